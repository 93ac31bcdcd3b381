"""One line per record on stdout, plain or JSON, for journald (which adds its own timestamps).

Under systemd (stdout is the journal stream named by $JOURNAL_STREAM) every line starts with its syslog
priority as an sd-daemon(3) prefix (`<3>` for ERROR): journald strips it and stores the line with that
PRIORITY, so `journalctl -p warning` finds Warren's warnings, and journald's per-unit rate limit, which
counts each priority in a pool of its own, never lets a flood of INFO or DEBUG lines crowd out a warning
or an error (docs/operations.md, "Logs").

Output is flushed at once for WARNING and above, otherwise by the worker's 0.2 s tick (`flush_logs`):
a write(2) per message line would cost more than the message itself at thousands of messages a second.
The lines go through Warren's own buffer on stdout's file descriptor, so PYTHONUNBUFFERED (set in many
images and CI environments) does not bring the per-line write(2) back; text a handler prints to
sys.stdout itself may therefore appear up to one tick before log lines written just before it.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TextIO

# Attributes every LogRecord has; anything else came in through `extra=` and is a structured field.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


# syslog(3) priority of each level, as journald reads it from a `<N>` prefix.
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


def priority_prefix(levelno: int) -> str:
    """The sd-daemon(3) prefix for a record of `levelno` (levels between the standard ones round down)."""
    for level in (logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO):
        if levelno >= level:
            return f"<{_PRIORITY[level]}>"
    return "<7>"


def journal_stream(environ: Mapping[str, str] | None = None, fd: int = 1) -> bool:
    """Whether `fd` is the stream systemd connected to the journal (systemd.exec(5), $JOURNAL_STREAM).

    Compared with the descriptor itself: a child whose stdout was redirected inherits the variable too.
    """
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    if not device.isdigit() or not inode.isdigit():
        return False
    try:
        st = os.fstat(fd)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (int(device), int(inode))


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


def _plain_values(values: Iterable[Any]) -> list[Any]:
    """The values as the plain format shows them, for %s or an f-string.

    Text is bare when it is printable and free of spaces, '"' and '=', else JSON-quoted; unprintable text
    (every whitespace character but the space, every control character) with all of its non-ASCII escaped,
    so that no such character reaches the line raw. Numbers and None stay as they are, their text never
    needs quotes. One loop without a call per value: it runs for four fields of every outcome line.
    """
    shown: list[Any] = []
    for value in values:
        if type(value) is str:
            text = value
        elif value is None or type(value) is int or type(value) is float:
            shown.append(value)
            continue
        else:
            text = str(value)
        if not text.isprintable():  # line breaks, other spaces, control characters: escape every one
            text = json.dumps(text)
        elif not text or " " in text or '"' in text or "=" in text:
            text = json.dumps(text, ensure_ascii=False)
        shown.append(text)
    return shown


def _printable(text: str) -> str:
    """`text` with each character that is not printable as its JSON escape (`\\n`, `\\u001b`, `\\u2028`).

    For finished lines, plain or JSON (inside a JSON string the escape reads back as the character): free
    text can carry a publisher's message id or a broker's error text, and neither may end a line, hide what
    follows or send a terminal escape to whoever reads the journal. Letters of any script stay as they are.
    """
    if text.isprintable():  # nearly always: one C scan, no copy
        return text
    return "".join(c if c.isprintable() else json.dumps(c)[1:-1] for c in text)


def _plain_fields(fields: dict[str, Any]) -> str:
    return " ".join([f"{k}={v}" for k, v in zip(fields, _plain_values(fields.values()), strict=True)])


# Renders one FieldLine: (values of its named fields, extra fields or None) -> the line with its newline.
Renderer = Callable[[tuple[Any, ...], dict[str, Any] | None], str]

# json.dumps with options other than the defaults builds a new encoder on every call.
_JSON = json.JSONEncoder(ensure_ascii=False, default=str)


class _PrefixingFormatter(logging.Formatter):
    """A formatter that starts each line with its priority prefix when `journal` is set."""

    def __init__(self, journal: bool = False) -> None:
        super().__init__()
        self.journal = journal

    def prefix(self, levelno: int) -> str:
        return priority_prefix(levelno) if self.journal else ""


class PlainFormatter(_PrefixingFormatter):
    """`LEVEL logger: message key=value ...` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line = self.line(record.levelname, record.name, record.getMessage(), _fields(record))
        if record.exc_info:
            line += " | " + " | ".join(self.formatException(record.exc_info).splitlines())
        return self.prefix(record.levelno) + _printable(line)

    @staticmethod
    def line(level: str, name: str, msg: str, fields: dict[str, Any]) -> str:
        head = f"{level} {name}: {msg}"
        return f"{head} {_plain_fields(fields)}" if fields else head

    def renderer(
        self, level: str, name: str, msg: str, fixed: dict[str, Any], names: tuple[str, ...]
    ) -> Renderer:
        # Fixed text goes into a %-template: a literal "%" (say, in a queue name) must stay literal.
        line = PlainFormatter.line(level, name, msg, fixed)
        head = (self.prefix(logging.getLevelName(level)) + line).replace("%", "%%")
        template = head + "".join(f" {n}=%s" for n in names)
        line_template = template + "\n"

        def render(values: tuple[Any, ...], extra: dict[str, Any] | None) -> str:
            if extra:
                return f"{template % tuple(_plain_values(values))} {_plain_fields(extra)}\n"
            return line_template % tuple(_plain_values(values))

        return render


class JsonFormatter(_PrefixingFormatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = self.doc(record.levelname, record.name, record.getMessage(), _fields(record), record.created)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        # The encoder escapes C0 controls only (ensure_ascii=False).
        return self.prefix(record.levelno) + _printable(_JSON.encode(doc))

    @staticmethod
    def doc(level: str, name: str, msg: str, fields: dict[str, Any], created: float) -> dict[str, Any]:
        return {"ts": round(created, 3), "level": level, "logger": name, "msg": msg, **fields}

    def renderer(
        self, level: str, name: str, msg: str, fixed: dict[str, Any], names: tuple[str, ...]
    ) -> Renderer:
        # The document's members after "ts", without braces: `"level": ..., ...`; "ts" goes first.
        doc = self.doc(level, name, msg, fixed, 0.0)
        del doc["ts"]
        head = _printable(_JSON.encode(doc)[1:-1])
        prefix = self.prefix(logging.getLevelName(level))

        def render(values: tuple[Any, ...], extra: dict[str, Any] | None) -> str:
            created = round(time.time(), 3)
            fields = dict(zip(names, values, strict=True))
            if extra:
                fields.update(extra)
            if not fields:
                return f'{prefix}{{"ts": {created!r}, {head}}}\n'
            return f'{prefix}{{"ts": {created!r}, {head}, {_printable(_JSON.encode(fields)[1:-1])}}}\n'

        return render


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


def setup_logging(fmt: str = "plain", level: str = "INFO", journal: bool | None = None) -> None:
    """Warren's handler on stdout at `level`; `journal` (default: detected) adds the priority prefixes."""
    global _handler
    if journal is None:
        journal = journal_stream()
    _handler = _LineHandler(_buffered_stdout())
    _handler.setFormatter(JsonFormatter(journal) if fmt == "json" else PlainFormatter(journal))
    root = logging.getLogger()
    root.handlers[:] = [_handler]
    root.setLevel(level)
    quiet_pika(root.level)


def quiet_pika(level: int) -> None:
    """Keep pika's own lines to what Warren cannot say itself, unless `level` is DEBUG.

    pika is chatty at INFO about every connection step. Worse, one failed connection attempt makes its
    connection workflow and transports (`pika.adapters.*`) log five or six ERROR lines, each repeating the
    same exception; that exception then reaches the worker's callback, which logs one WARNING with the
    endpoint, the reason and the next attempt. The WARNINGs of `pika.connection` and `pika.channel` are the
    broker's Connection.Close / Channel.Close, which the worker reports too; their ERRORs (protocol
    violations) it cannot see, so those stay. At DEBUG every WARNING and ERROR of pika shows.
    """
    pika_level = max(logging.WARNING, level)
    logging.getLogger("pika").setLevel(pika_level)
    diagnosing = level <= logging.DEBUG
    logging.getLogger("pika.adapters").setLevel(pika_level if diagnosing else logging.CRITICAL)
    for name in ("pika.connection", "pika.channel"):
        logging.getLogger(name).setLevel(pika_level if diagnosing else max(logging.ERROR, level))


class FieldLine:
    """Lines of one logger, level and message: the same fixed fields, the same named fields, optional extras.

    ``write(values, extra)`` gives the same output as
    ``logger.log(level, msg, extra={**fixed, **dict(zip(names, values)), **extra})``, but when the line would
    only reach our own handler, everything except the values is rendered once and each line is formatted and
    written directly, skipping LogRecord creation, the caller lookup and a dict per line.
    """

    def __init__(
        self,
        logger: logging.Logger,
        msg: str,
        fixed: dict[str, Any],
        names: tuple[str, ...],
        level: int = logging.INFO,
    ) -> None:
        self.logger = logger
        self.msg = msg
        self.fixed = fixed
        self.names = names
        self.level = level
        self._formatter: logging.Formatter | None = None
        self._render: Renderer | None = None

    def enabled(self) -> bool:
        return self.logger.isEnabledFor(self.level)

    def write(self, values: tuple[Any, ...], extra: dict[str, Any] | None = None) -> None:
        logger = self.logger
        if not logger.isEnabledFor(self.level):
            return
        line = self.render(values, extra)
        if line is None:
            fields = {**self.fixed, **dict(zip(self.names, values, strict=True)), **(extra or {})}
            record = logger.makeRecord(logger.name, self.level, "", 0, self.msg, (), None, extra=fields)
            logger.handle(record)
        else:
            write_line(line)
            if self.level >= logging.WARNING:  # as _LineHandler does: warnings and errors at once
                flush_logs()

    def render(self, values: tuple[Any, ...], extra: dict[str, Any] | None = None) -> str | None:
        """The finished line (newline included) for `write_line`, or None when it must go through logging.

        Thread-safe, so a line can be rendered on one thread and written later by another; the caller
        checks that the line's level is enabled.
        """
        logger = self.logger
        if logger.handlers or logger.filters or _handler is None:
            return None
        fmt = _handler.formatter
        render = self._render
        if fmt is not self._formatter or render is None:  # first line, or logging was set up anew
            if not isinstance(fmt, PlainFormatter | JsonFormatter):
                return None
            render = fmt.renderer(
                logging.getLevelName(self.level), logger.name, self.msg, self.fixed, self.names
            )
            self._render, self._formatter = render, fmt
        return render(values, extra)


def write_line(line: str) -> None:
    """Write a line from `FieldLine.render` to Warren's handler."""
    handler = _handler
    if handler is not None:
        with handler.lock:  # type: ignore[union-attr]
            handler.stream.write(line)


def flush_logs() -> None:
    if _handler is not None:
        _handler.flush()
