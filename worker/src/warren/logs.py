"""One line per record on stdout, plain or JSON, for journald (which adds its own timestamps).

Output is flushed at once for WARNING and above, otherwise by the worker's 0.2 s tick (`flush_logs`):
a write(2) per message line would cost more than the message itself at thousands of messages a second.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

# Attributes every LogRecord has; anything else came in through `extra=` and is a structured field.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
_NEEDS_QUOTES = re.compile(r'[\s"=]')


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


def _plain_value(value: Any) -> str:
    if value is None or isinstance(value, int | float):
        return str(value)
    text = str(value)
    if not text or _NEEDS_QUOTES.search(text):
        return json.dumps(text, ensure_ascii=False)
    return text


class PlainFormatter(logging.Formatter):
    """`LEVEL logger: message key=value ...` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line = self.line(record.levelname, record.name, record.getMessage(), _fields(record), record.created)
        if record.exc_info:
            line += " | " + " | ".join(self.formatException(record.exc_info).splitlines())
        return line.replace("\n", " ") if "\n" in line else line

    @staticmethod
    def line(level: str, name: str, msg: str, fields: dict[str, Any], created: float) -> str:
        line = f"{level} {name}: {msg}"
        if fields:
            line += " " + " ".join([f"{k}={_plain_value(v)}" for k, v in fields.items()])
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = self.doc(record.levelname, record.name, record.getMessage(), _fields(record), record.created)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False, default=str)

    @staticmethod
    def doc(level: str, name: str, msg: str, fields: dict[str, Any], created: float) -> dict[str, Any]:
        return {"ts": round(created, 3), "level": level, "logger": name, "msg": msg, **fields}

    @classmethod
    def line(cls, level: str, name: str, msg: str, fields: dict[str, Any], created: float) -> str:
        return json.dumps(cls.doc(level, name, msg, fields, created), ensure_ascii=False, default=str)


class _LineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record) + "\n")
            if record.levelno >= logging.WARNING:
                self.stream.flush()
        except Exception:
            self.handleError(record)


_handler: _LineHandler | None = None


def setup_logging(fmt: str = "plain", level: str = "INFO") -> None:
    global _handler
    _handler = _LineHandler(sys.stdout)
    _handler.setFormatter(JsonFormatter() if fmt == "json" else PlainFormatter())
    root = logging.getLogger()
    root.handlers[:] = [_handler]
    root.setLevel(level)
    # pika is chatty at INFO about every connection step; our own lines say what matters.
    logging.getLogger("pika").setLevel(max(logging.WARNING, root.level))


def log_fields(logger: logging.Logger, msg: str, fields: dict[str, Any]) -> None:
    """INFO line with structured fields; the per-message hot path.

    Same output as ``logger.info(msg, extra=fields)``, but when the line would only reach our own
    handler it is formatted and written directly, skipping LogRecord creation and the caller lookup.
    """
    if not logger.isEnabledFor(logging.INFO):
        return
    handler = _handler
    fmt = handler.formatter if handler is not None else None
    if (
        handler is None
        or logger.handlers
        or logger.filters
        or not isinstance(fmt, PlainFormatter | JsonFormatter)
    ):
        logger.handle(logger.makeRecord(logger.name, logging.INFO, "", 0, msg, (), None, extra=fields))
        return
    line = fmt.line("INFO", logger.name, msg, fields, time.time()) + "\n"
    with handler.lock:  # type: ignore[union-attr]
        handler.stream.write(line)


def flush_logs() -> None:
    if _handler is not None:
        _handler.flush()
