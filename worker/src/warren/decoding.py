"""Turn an AMQP body into a handler's input, or say precisely why it cannot be (pure logic)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from json.scanner import make_scanner
from typing import Any

from warren.handlers import InvalidMessage

# What json.loads scans with, as JSONDecoder builds it: (text, index) -> (value, end). typeshed types the
# argument as a scanner; it is the decoder whose settings the scanner takes.
_SCAN = make_scanner(json.JSONDecoder())  # type: ignore[arg-type]
_JSON_BLANKS = " \t\n\r"  # JSON's whitespace; other Unicode spaces after a document are "Extra data"
_JSON_TYPES = (None, "", "application/json")
# Not compressed. Kombu and Spring AMQP put the charset here ("utf-8", "UTF-8") rather than a MIME coding.
_PLAIN_ENCODINGS = frozenset({"identity", "utf-8", "utf8"})


def parse_json(text: str) -> Any:
    """json.loads, with every way it fails as a ValueError whose text says why in one line.

    Valid JSON can still be beyond Python's decoder, and then it raises something other than
    JSONDecodeError: RecursionError when nested deeper than the recursion limit, a plain ValueError for
    an integer of more than 4,300 digits. Raised from the worker's delivery callback, either would end
    the connection on every redelivery; from warren-publish, a traceback halfway through a file.
    """
    try:
        # The common case, a document at the start of the text, straight through the decoder's C scanner
        # (what JSONDecoder.raw_decode calls): json.loads adds three Python calls and two regex matches
        # for blanks around the document to every message. Trailing JSON
        # blanks (a line's newline) are accepted here rather than parsed again below.
        value, end = _SCAN(text, 0)
        if end == len(text) or not text[end:].strip(_JSON_BLANKS):
            return value
    except (StopIteration, ValueError, RecursionError):
        pass  # json.loads below says why, or accepts the leading blanks the scanner does not
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise ValueError("nested too deep for the JSON decoder") from None
    except ValueError as exc:
        raise ValueError(f"beyond the JSON decoder's limits: {exc}") from None


def decode_body(
    body: bytes, content_type: str | None = None, content_encoding: str | None = None
) -> dict[str, Any]:
    """UTF-8 JSON object -> dict; anything else raises InvalidMessage with a one-line reason."""
    if content_type not in _JSON_TYPES and not (content_type or "").startswith("application/json;"):
        raise InvalidMessage(f"unsupported content type {content_type!r}")
    if content_encoding and content_encoding.lower() not in _PLAIN_ENCODINGS:  # "gzip", not "not UTF-8"
        raise InvalidMessage(f"unsupported content encoding {content_encoding!r}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidMessage(f"body is not UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        value = parse_json(text)
    except ValueError as exc:
        raise InvalidMessage(f"body is {exc}") from None
    if not isinstance(value, dict):
        raise InvalidMessage(f"body must be a JSON object, got {type(value).__name__}")
    return value


def check_required(body: dict[str, Any], fields: Sequence[str]) -> None:
    # A plain loop: a list comprehension would build a list for every message, even a complete one.
    for name in fields:
        if name not in body:
            missing = [f for f in fields if f not in body]
            raise InvalidMessage(
                "missing required field" + ("s " if len(missing) > 1 else " ") + ", ".join(missing)
            )
