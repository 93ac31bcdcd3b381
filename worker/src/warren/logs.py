"""One line per record on stdout, plain or JSON, for journald (which adds its own timestamps).

Output is flushed at once for WARNING and above, otherwise by the worker's 0.2 s tick (`flush_logs`):
a write(2) per message line would cost more than the message itself at thousands of messages a second.
The lines go through Warren's own buffer on stdout's file descriptor, so PYTHONUNBUFFERED (set in many
images and CI environments) does not bring the per-line write(2) back; text a handler prints to
sys.stdout itself may therefore appear up to one tick before log lines written just before it.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any, TextIO

# Attributes every LogRecord has; anything else came in through `extra=` and is a structured field.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
_NEEDS_QUOTES = re.compile(r'[\s"=]')


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


def _plain_value(value: Any) -> str:
    text = value if type(value) is str else str(value)
    if value is None or isinstance(value, int | float):
        return text
    if not text or _NEEDS_QUOTES.search(text):
        return json.dumps(text, ensure_ascii=False)
    return text


def _plain_fields(fields: dict[str, Any]) -> str:
    return " ".join([f"{k}={_plain_value(v)}" for k, v in fields.items()])


class PlainFormatter(logging.Formatter):
    """`LEVEL logger: message key=value ...` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line = self.line(record.levelname, record.name, record.getMessage(), _fields(record), record.created)
        if record.exc_info:
            line += " | " + " | ".join(self.formatException(record.exc_info).splitlines())
        return line.replace("\n", " ") if "\n" in line else line

    @staticmethod
    def line(level: str, name: str, msg: str, fields: dict[str, Any], created: float) -> str:
        return PlainFormatter.extend(f"{level} {name}: {msg}", fields, created)

    @staticmethod
    def prefix(level: str, name: str, msg: str, fixed: dict[str, Any]) -> str:
        return PlainFormatter.line(level, name, msg, fixed, 0.0)

    @staticmethod
    def extend(prefix: str, fields: dict[str, Any], created: float) -> str:
        return f"{prefix} {_plain_fields(fields)}" if fields else prefix


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

    @classmethod
    def prefix(cls, level: str, name: str, msg: str, fixed: dict[str, Any]) -> str:
        # The document's members after "ts", without braces: `"level": ..., ...`; extend() puts "ts" first.
        doc = cls.doc(level, name, msg, fixed, 0.0)
        del doc["ts"]
        return json.dumps(doc, ensure_ascii=False, default=str)[1:-1]

    @staticmethod
    def extend(prefix: str, fields: dict[str, Any], created: float) -> str:
        ts = json.dumps(round(created, 3))
        if not fields:
            return f'{{"ts": {ts}, {prefix}}}'
        rest = json.dumps(fields, ensure_ascii=False, default=str)[1:-1]
        return f'{{"ts": {ts}, {prefix}, {rest}}}'


class _LineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record) + "\n")
            if record.levelno >= logging.WARNING:
                self.stream.flush()
        except Exception:
            self.handleError(record)


_handler: _LineHandler | None = None

_BUFFER_BYTES = 64 * 1024


def _buffered_stdout() -> TextIO:
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # stdout replaced (tests, embedding): use it as is
        return sys.stdout
    sys.stdout.flush()
    # Lives as long as the process; closefd=False leaves fd 1 to its owner.
    return open(fd, "w", buffering=_BUFFER_BYTES, encoding="utf-8", errors="backslashreplace", closefd=False)


def setup_logging(fmt: str = "plain", level: str = "INFO") -> None:
    global _handler
    _handler = _LineHandler(_buffered_stdout())
    _handler.setFormatter(JsonFormatter() if fmt == "json" else PlainFormatter())
    root = logging.getLogger()
    root.handlers[:] = [_handler]
    root.setLevel(level)
    # pika is chatty at INFO about every connection step; our own lines say what matters.
    logging.getLogger("pika").setLevel(max(logging.WARNING, root.level))


class FieldLine:
    """INFO lines of one logger and message whose leading fields never change; the per-message hot path.

    ``write(fields)`` gives the same output as ``logger.info(msg, extra={**fixed, **fields})``, but when
    the line would only reach our own handler, the fixed part is rendered once and each line is
    formatted and written directly, skipping LogRecord creation and the caller lookup.
    """

    def __init__(self, logger: logging.Logger, msg: str, fixed: dict[str, Any]) -> None:
        self.logger = logger
        self.msg = msg
        self.fixed = fixed
        self._formatter: logging.Formatter | None = None
        self._prefix = ""

    def write(self, fields: dict[str, Any]) -> None:
        logger = self.logger
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
            extra = {**self.fixed, **fields}
            record = logger.makeRecord(logger.name, logging.INFO, "", 0, self.msg, (), None, extra=extra)
            logger.handle(record)
            return
        if fmt is not self._formatter:  # rendered again only if logging was set up anew
            self._prefix = fmt.prefix("INFO", logger.name, self.msg, self.fixed)
            self._formatter = fmt
        line = fmt.extend(self._prefix, fields, time.time()) + "\n"
        with handler.lock:  # type: ignore[union-attr]
            handler.stream.write(line)


def flush_logs() -> None:
    if _handler is not None:
        _handler.flush()
