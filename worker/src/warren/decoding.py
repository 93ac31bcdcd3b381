"""Turn an AMQP body into a handler's input, or say precisely why it cannot be (pure logic)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from warren.handlers import InvalidMessage

_JSON_TYPES = (None, "", "application/json")


def decode_body(body: bytes, content_type: str | None = None) -> dict[str, Any]:
    """UTF-8 JSON object -> dict; anything else raises InvalidMessage with a one-line reason."""
    if content_type not in _JSON_TYPES and not (content_type or "").startswith("application/json;"):
        raise InvalidMessage(f"unsupported content type {content_type!r}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidMessage(f"body is not UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidMessage(f"body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise InvalidMessage("body nests too deep for the JSON decoder") from None
    except ValueError as exc:  # JSON beyond Python's limits: an integer of more than 4,300 digits
        raise InvalidMessage(f"body cannot be decoded: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidMessage(f"body must be a JSON object, got {type(value).__name__}")
    return value


def check_required(body: dict[str, Any], fields: Sequence[str]) -> None:
    missing = [f for f in fields if f not in body]
    if missing:
        raise InvalidMessage(
            "missing required field" + ("s " if len(missing) > 1 else " ") + ", ".join(missing)
        )
