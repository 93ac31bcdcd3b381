"""Log lines: plain and JSON formats, quoting, unprintable text, FieldLine, buffering, journald priorities,
pika's own lines."""

from __future__ import annotations

import io
import json
import logging
import os
import sys
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from warren.logs import (
    FieldLine,
    JsonFormatter,
    PlainFormatter,
    flush_logs,
    journal_stream,
    setup_logging,
)


def _record(**extra: Any) -> logging.LogRecord:
    rec = logging.LogRecord("warren.outcome", logging.INFO, "f", 1, "message %s", ("acked",), None)
    rec.__dict__.update(extra)
    return rec


def test_plain_and_json_formats() -> None:
    rec = _record(outcome="acked", queue="q", error="E: two words", message_id=None)
    assert PlainFormatter().format(rec) == (
        'INFO warren.outcome: message acked outcome=acked queue=q error="E: two words" message_id=None'
    )
    doc = json.loads(JsonFormatter().format(rec))
    assert {k: doc[k] for k in ("level", "logger", "msg", "outcome", "queue", "error")} == {
        "level": "INFO",
        "logger": "warren.outcome",
        "msg": "message acked",
        "outcome": "acked",
        "queue": "q",
        "error": "E: two words",
    }


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("order.created", "order.created"),
        ("2633c543-1fa0-4950-9cb9-189d4b39451c", "2633c543-1fa0-4950-9cb9-189d4b39451c"),
        ("", '""'),
        ("two words", '"two words"'),
        ("grüße", "grüße"),
        ("grüße an alle", '"grüße an alle"'),  # printable: quoted, its letters as they are
        (" padded", '" padded"'),
        ("line\n", '"line\\n"'),
        ("em\u2003space", '"em\\u2003space"'),
        ("C1\x9bcontrol é", '"C1\\u009bcontrol \\u00e9"'),
        ("esc\x1b[31m", '"esc\\u001b[31m"'),  # a control character never reaches the journal raw
        ('say "hi"', '"say \\"hi\\""'),
        ("a=b", '"a=b"'),
        (3, "3"),
        (0.25, "0.25"),
        (True, "True"),
        (None, "None"),
        (PurePosixPath("/var/x"), "/var/x"),  # not text: shown as its str(), quoted by the same rule
        (PurePosixPath("/var/a b"), '"/var/a b"'),
    ],
)
def test_plain_values_are_quoted_only_when_a_reader_needs_it(value: Any, shown: str) -> None:
    line = PlainFormatter.line("INFO", "warren.outcome", "m", {"v": value})
    assert line == f"INFO warren.outcome: m v={shown}"


# What a publisher can put into a message id: a line break, a terminal escape (C0 and C1), a line
# separator, a right-to-left override; and letters, which must stay readable.
_HOSTILE_ID = "id\n\x1b[2J\x9b31m\u2028\u202egrüße"


def test_plain_lines_carry_no_unprintable_character() -> None:
    # An ordinary log message with a publisher's message id in its text (consumer.py's nack warning).
    rec = logging.LogRecord(
        "warren.worker", logging.WARNING, "f", 1, "requeueing message %s", (_HOSTILE_ID,), None
    )
    line = PlainFormatter().format(rec)
    assert line == "WARNING warren.worker: requeueing message id\\n\\u001b[2J\\u009b31m\\u2028\\u202egrüße"
    assert line.isprintable()


def test_json_lines_carry_no_unprintable_character_and_read_back_unchanged() -> None:
    rec = logging.LogRecord(
        "warren.worker", logging.WARNING, "f", 1, "requeueing message %s", (_HOSTILE_ID,), None
    )
    rec.message_id = _HOSTILE_ID
    line = JsonFormatter().format(rec)
    assert line.isprintable() and "grüße" in line
    doc = json.loads(line)
    assert doc["msg"] == f"requeueing message {_HOSTILE_ID}" and doc["message_id"] == _HOSTILE_ID


def test_json_outcome_lines_carry_no_unprintable_character(own_logging: None) -> None:
    setup_logging("json", "INFO")
    line = FieldLine(logging.getLogger("warren.outcome"), "message acked", {"queue": "q"}, ("message_id",))
    rendered = line.render((_HOSTILE_ID,))
    assert rendered is not None and rendered.endswith("\n") and rendered[:-1].isprintable()
    assert json.loads(rendered)["message_id"] == _HOSTILE_ID


@pytest.mark.parametrize("fmt", ["plain", "json"])
def test_field_line_writes_what_the_formatter_would(
    fmt: str, own_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging(fmt, "INFO")
    fixed = {"outcome": "acked", "queue": "100%s"}  # "%": the fixed part becomes a %-template
    names = ("routing_key", "message_id", "attempt", "duration_us")
    values = ("order.created", None, 2, 250)
    extra = {"error": "E: two words", "reason": ""}
    line = FieldLine(logging.getLogger("warren.outcome"), "message acked", fixed, names)
    line.write(values, extra)
    line.write(("key with space", "id=1", 1, None))
    flush_logs()
    written = capsys.readouterr().out.splitlines()
    formatter = PlainFormatter() if fmt == "plain" else JsonFormatter()
    expected = [
        formatter.format(_record(**fixed, **dict(zip(names, values, strict=True)), **extra)),
        formatter.format(
            _record(**fixed, routing_key="key with space", message_id="id=1", attempt=1, duration_us=None)
        ),
    ]
    if fmt == "json":  # the timestamps differ; everything else must not
        written = [{**json.loads(w), "ts": 0} for w in written]
        expected = [{**json.loads(e), "ts": 0} for e in expected]
    assert written == expected


def test_log_lines_are_buffered_even_when_stdout_writes_through(
    own_logging: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What PYTHONUNBUFFERED=1 makes of sys.stdout: every write reaches the file descriptor at once.
    out = tmp_path / "stdout"
    with open(out, "wb", buffering=0) as raw:
        monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(raw, write_through=True))
        setup_logging("plain", "INFO")
        line = FieldLine(logging.getLogger("warren.outcome"), "message acked", {"queue": "q"}, ("attempt",))
        line.write((1,))
        assert out.read_text() == ""  # held in Warren's buffer, not one write(2) per line
        flush_logs()
        assert out.read_text() == "INFO warren.outcome: message acked queue=q attempt=1\n"
        logging.getLogger("warren.worker").warning("broker gone")
        assert out.read_text().endswith("WARNING warren.worker: broker gone\n")  # warnings at once


def test_field_line_goes_through_logging_when_a_handler_listens(
    own_logging: None, caplog: pytest.LogCaptureFixture
) -> None:
    setup_logging("plain", "INFO")
    logger = logging.getLogger("warren.outcome.test")
    logger.addHandler(caplog.handler)
    try:
        FieldLine(logger, "message acked", {"queue": "q"}, ("attempt",)).write((1,))
    finally:
        logger.removeHandler(caplog.handler)
    [record] = [r for r in caplog.records if r.name == "warren.outcome.test"]
    assert (record.getMessage(), record.queue, record.attempt) == ("message acked", "q", 1)  # type: ignore[attr-defined]


def test_journal_stream_is_recognised_by_the_descriptor_itself(tmp_path: Path) -> None:
    with open(tmp_path / "out", "w") as fh:
        st = os.fstat(fh.fileno())
        env = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        assert journal_stream(env, fh.fileno())
        # Inherited by a process whose stdout went elsewhere: not the journal.
        assert not journal_stream({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"}, fh.fileno())
    for value in ("", "garbage", "1:", ":2"):
        assert not journal_stream({"JOURNAL_STREAM": value}, 1)


def _leveled(level: int) -> logging.LogRecord:
    return logging.LogRecord("warren.worker", level, "f", 1, "broker gone", (), None)


@pytest.mark.parametrize(
    ("level", "prefix"),
    [
        (logging.DEBUG, "<7>"),
        (logging.INFO, "<6>"),
        (logging.WARNING, "<4>"),
        (logging.ERROR, "<3>"),
        (logging.CRITICAL, "<2>"),
    ],
)
def test_lines_carry_their_syslog_priority_for_journald(level: int, prefix: str) -> None:
    name = logging.getLevelName(level)
    assert (
        PlainFormatter(journal=True).format(_leveled(level)) == f"{prefix}{name} warren.worker: broker gone"
    )
    assert JsonFormatter(journal=True).format(_leveled(level)).startswith(prefix + "{")
    assert PlainFormatter().format(_leveled(level)) == f"{name} warren.worker: broker gone"  # a terminal


@pytest.mark.parametrize("fmt", ["plain", "json"])
def test_field_lines_carry_their_own_level_and_priority(
    fmt: str, own_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging(fmt, "INFO", journal=True)
    logger = logging.getLogger("warren.outcome")
    dead = FieldLine(logger, "message dead-lettered", {"queue": "q"}, ("attempt",), logging.ERROR)
    acked = FieldLine(logger, "message acked", {"queue": "q"}, ("attempt",), logging.DEBUG)
    assert dead.enabled() and not acked.enabled()
    acked.write((1,))
    dead.write((1,), {"reason": "invalid-message"})
    flush_logs()
    (line,) = capsys.readouterr().out.splitlines()
    if fmt == "plain":
        assert (
            line == "<3>ERROR warren.outcome: message dead-lettered queue=q attempt=1 reason=invalid-message"
        )
    else:
        assert line.startswith('<3>{"ts": ') and '"level": "ERROR"' in line


def test_pikas_connection_workflow_errors_stay_out_unless_debugging(own_logging: None) -> None:
    setup_logging("plain", "INFO")
    workflow = logging.getLogger("pika.adapters.utils.connection_workflow")
    assert not workflow.isEnabledFor(logging.ERROR)
    assert not logging.getLogger("pika.adapters.base_connection").isEnabledFor(logging.ERROR)
    channel = logging.getLogger("pika.channel")
    assert channel.isEnabledFor(logging.ERROR) and not channel.isEnabledFor(logging.WARNING)
    setup_logging("plain", "DEBUG")
    assert workflow.isEnabledFor(logging.ERROR) and not workflow.isEnabledFor(logging.INFO)
    assert channel.isEnabledFor(logging.WARNING)
