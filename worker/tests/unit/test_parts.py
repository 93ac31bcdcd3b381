"""sd_notify, log formats, built-in handlers, publisher input parsing, endpoint rotation, ack coalescing."""

from __future__ import annotations

import gc
import io
import json
import logging
import socket
import sys
import uuid
from pathlib import Path, PurePosixPath
from typing import Any

import pika
import pytest
from conftest import Props
from prometheus_client import generate_latest

import warren.consumer
import warren.logs
from warren.cli import GC_YOUNG_THRESHOLD, InputError, parse_line, publish_main, tune_gc
from warren.connection import Endpoints
from warren.consumer import Delivery, Worker, _outcome_values
from warren.handlers import InvalidMessage, Message, job, order_event, whatsapp_notification
from warren.logs import FieldLine, JsonFormatter, PlainFormatter, flush_logs, setup_logging
from warren.metrics import Metrics
from warren.notify import Notifier
from warren.retry import Backoff


def test_notify_abstract_socket_and_watchdog() -> None:
    name = f"warren-unit-{uuid.uuid4().hex}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind("\0" + name)
    server.settimeout(2)
    n = Notifier({"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "4000000"})
    assert n.enabled and n.watchdog_interval == 2.0
    assert n.ready("ok")
    assert server.recv(100) == b"READY=1\nSTATUS=ok"
    assert n.status("x=1") and server.recv(100) == b"STATUS=x=1"
    assert n.watchdog() and server.recv(100) == b"WATCHDOG=1"
    assert n.stopping() and server.recv(100) == b"STOPPING=1"
    n.close()
    server.close()


def test_notify_path_socket_and_disabled(tmp_path: Path) -> None:
    path = str(tmp_path / "notify")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    assert Notifier({"NOTIFY_SOCKET": path}).ready() and server.recv(100) == b"READY=1"
    server.close()
    off = Notifier({})
    assert not off.enabled and off.ready() is False and off.watchdog_interval is None
    # Watchdog meant for another process (WATCHDOG_PID) is not ours to feed.
    assert (
        Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"}).watchdog_interval
        is None
    )


def test_notify_failure_is_not_fatal(tmp_path: Path) -> None:
    assert Notifier({"NOTIFY_SOCKET": str(tmp_path / "absent")}).ready() is False


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


@pytest.mark.parametrize(
    ("seconds", "us"), [(None, None), (0.0, 0), (0.0000004, 0), (0.000263871, 264), (2.5, 2_500_000)]
)
def test_outcome_duration_is_whole_microseconds(seconds: float | None, us: int | None) -> None:
    d = Delivery(1, 1, "events", "order.created", Props(), b"{}")
    assert _outcome_values(d, seconds) == ("order.created", None, 1, us)


@pytest.fixture
def own_logging() -> Any:
    """Restore the root logger and Warren's handler after a test that calls setup_logging."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level, warren.logs._handler
    yield
    root.handlers[:], _, warren.logs._handler = saved
    root.setLevel(saved[1])


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


def msg(body: dict[str, Any], routing_key: str = "order.created") -> Message:
    return Message(body, routing_key, "events", "q", "id-1", 1, False)


def test_order_event_handler_logs_like_the_tutorial(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        order_event(msg({"order_id": 123, "event": "order.created"}))
    assert caplog.messages == [
        "Received event {'order_id': 123, 'event': 'order.created'}",
        "Processing event type order.created",
    ]
    order_event(msg({"order_id": 1}, "order.completed"))  # event type from the routing key
    with pytest.raises(InvalidMessage, match=r"unknown order event type 'order.shipped'"):
        order_event(msg({"order_id": 1}, "order.shipped"))


def test_job_and_whatsapp_validation() -> None:
    job(msg({"task": "t", "seconds": 0}))
    for bad in ({"task": "t", "seconds": -1}, {"task": "t", "seconds": True}, {"task": "t", "seconds": "2"}):
        with pytest.raises(InvalidMessage):
            job(msg(bad))
    whatsapp_notification(msg({"phone": "+911234567890", "message": "hi"}))
    with pytest.raises(InvalidMessage, match=r"E\.164"):
        whatsapp_notification(msg({"phone": "12345", "message": "hi"}))
    with pytest.raises(InvalidMessage, match="non-empty"):
        whatsapp_notification(msg({"phone": "+911234567890", "message": " "}))


def test_parse_line_envelope_or_plain_body() -> None:
    m = parse_line(
        '{"routing_key": "order.created", "body": {"order_id": 1}, "message_id": "m1"}', "events", None
    )
    assert (m.exchange, m.routing_key, m.message_id, json.loads(m.body)) == (
        "events",
        "order.created",
        "m1",
        {"order_id": 1},
    )
    m = parse_line('{"order_id": 2}', "events", "order.updated")
    assert (m.routing_key, json.loads(m.body)) == ("order.updated", {"order_id": 2})
    # "body" next to a non-envelope key: a plain body that happens to contain "body".
    m = parse_line('{"body": {"x": 1}, "order_id": 3}', "", "jobs")
    assert json.loads(m.body) == {"body": {"x": 1}, "order_id": 3}
    for line, reason in [
        ("{bad", "^not JSON: Expecting property name enclosed in double quotes at line 1 column 2$"),
        ("[" * 100_000, "^nested too deep for the JSON decoder$"),
        (
            '{"n": 1' + "0" * 5000 + "}",
            r"^beyond the JSON decoder's limits: Exceeds the limit \(4300 digits\)",
        ),
        (
            '{"routing_key": "k", "body": {"n": NaN}}',
            "^body cannot be sent as JSON: Out of range float values are not JSON compliant",
        ),
        (
            '{"routing_key": "k", "body": {"n": 1e999}}',
            "^body cannot be sent as JSON: Out of range float values are not JSON compliant",
        ),
        (
            '{"routing_key": "k", "body": {"s": "\\ud800"}}',
            "^body cannot be sent as JSON: 'utf-8' codec can't encode character '\\\\ud800'",
        ),
        (
            '{"routing_key": "k", "body": {}, "headers": {"ratio": [1, 0.5]}}',
            r"^header value 0\.5 has no AMQP encoding; send it as text$",
        ),
        (
            '{"routing_key": "k", "body": {}, "headers": {"id": 123456789012345678901234567890}}',
            "^a header integer is beyond AMQP's 64 bits$",
        ),
        (
            '{"routing_key": "k", "body": {}, "headers": {"' + "h" * 256 + '": 1}}',
            "^a header name is longer than AMQP's 255 bytes$",
        ),
        ("[1]", "expected a JSON object, got list"),
        ('{"body": 5, "routing_key": "k"}', "envelope body must be a JSON object"),
        ('{"a": 1}', "no routing key"),
    ]:
        with pytest.raises(InputError, match=reason):
            parse_line(line, "", None)


def test_publish_cli_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        publish_main([])
    assert info.value.code == 2
    assert "give exactly one of" in capsys.readouterr().err
    assert publish_main(["{}"]) == 2
    assert "--routing-key is required" in capsys.readouterr().err


def test_endpoints_rotate_and_back_off() -> None:
    e = Endpoints(("a", "b", "c"), Backoff(1.0, 2.0, 5.0))
    assert [e.next_url() for _ in range(5)] == ["a", "b", "c", "a", "b"]
    delays = [e.failed() for _ in range(5)]
    assert all(n / 2 <= d <= n for d, n in zip(delays, (1, 2, 4, 5, 5), strict=True)), delays
    e.succeeded()
    assert e.failures == 0 and e.failed() <= 1.0


def test_acks_are_coalesced_and_stragglers_do_not_block(worker: Worker) -> None:
    ch = worker._channel
    for tag in range(1, 7):
        worker._unacked[tag] = Delivery(worker._gen, tag, "events", "order.created", Props(), b"{}")

    def done(*tags: int) -> None:
        for t in tags:
            worker._unacked[t].done = True
            worker._ack_ready.append(t)
        worker._flush_acks()

    done(2, 3)  # 1 is still running: 2 and 3 are acked on their own, not held back
    assert ch.acks == [(2, False), (3, False)]
    done(1, 5)  # prefix 1..3 done -> one ack for 1 (2, 3 already acked); 5 on its own
    assert ch.acks[2:] == [(1, False), (5, False)]
    done(4, 6)  # 4 and 6 complete the prefix: one multiple ack
    assert ch.acks[4:] == [(6, True)]
    assert not worker._unacked


def test_acked_line_rendered_by_the_handler_is_written_only_when_the_ack_is_queued(
    worker: Worker, own_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging("plain", "DEBUG")  # acked lines are DEBUG (warren.outcome_levels)

    def outcome_lines() -> list[str]:
        flush_logs()
        return [x for x in capsys.readouterr().out.splitlines() if x.startswith("DEBUG warren.outcome:")]

    ch = worker._channel
    message = Message({}, "order.created", "events", "order.events", "m-1", 1, False)
    spec = worker.router.lookup("order.created").target[0]  # type: ignore[union-attr]
    stale = Delivery(worker._gen, 1, "events", "order.created", Props(), b"{}")
    worker._run_handler(stale, spec, message)
    worker._gen += 1  # its channel went away before the loop saw the result
    worker._on_results()
    assert outcome_lines() == [] and ch.acks == []

    d = Delivery(worker._gen, 2, "events", "order.created", Props(), b"{}")
    worker._unacked[d.tag] = d
    worker._run_handler(d, spec, message)
    assert worker._results[0][4] is not None  # rendered on the handler's thread ...
    assert outcome_lines() == []  # ... but not written yet
    worker._on_results()
    (line,) = outcome_lines()
    assert line.startswith("DEBUG warren.outcome: message acked outcome=acked queue=order.events ")
    assert "routing_key=order.created message_id=None attempt=1 duration_us=" in line
    assert ch.acks == [(2, False)] and worker.metrics.snapshot()["processed"] == 1


def test_acked_line_goes_through_logging_with_its_duration_when_a_handler_listens(
    worker: Worker, own_logging: None, caplog: pytest.LogCaptureFixture
) -> None:
    setup_logging("plain", "DEBUG")
    listened = logging.getLogger("warren.outcome")
    listened.addHandler(caplog.handler)
    ch = worker._channel
    try:
        spec = worker.router.lookup("order.created").target[0]  # type: ignore[union-attr]
        d = Delivery(worker._gen, 1, "events", "order.created", Props(), b"{}")
        worker._unacked[d.tag] = d
        worker._run_handler(d, spec, Message({}, "order.created", "events", "order.events", "m-1", 1, False))
        assert worker._results[0][4] is None  # not rendered ahead: the line must reach the listener
        worker._on_results()
    finally:
        listened.removeHandler(caplog.handler)
    [record] = [r for r in caplog.records if r.name == "warren.outcome"]
    assert (record.getMessage(), record.outcome) == ("message acked", "acked")  # type: ignore[attr-defined]
    assert isinstance(record.duration_us, int)  # type: ignore[attr-defined]
    assert ch.acks == [(1, False)]


def test_an_unforeseen_decoding_failure_dead_letters_instead_of_ending_the_connection(
    worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_decoder(*_: Any) -> Any:
        raise LookupError("decoder bug")

    monkeypatch.setattr(warren.consumer, "decode_body", broken_decoder)
    ch = worker._channel
    deliver = pika.spec.Basic.Deliver(delivery_tag=7, exchange="events", routing_key="order.created")
    worker._on_message(None, deliver, pika.BasicProperties(message_id="m-7"), b"{}")
    ((exchange, routing_key, body, props),) = ch.published
    assert (exchange, routing_key, body) == ("warren.dlx", "order.events", b"{}")
    assert props.headers["x-warren-reason"] == "invalid-message"
    assert props.headers["x-warren-error"] == "LookupError: decoder bug"
    assert ch.acks == [] and 7 in worker._unacked  # acked only once the broker confirms the dead letter


def test_metrics_exposition_counts_outcomes_failures_and_latency() -> None:
    metrics = Metrics("q")
    metrics.record_outcome("acked")
    metrics.record_outcome("acked", 2)  # a batch of acks
    metrics.record_outcome("dead-lettered")
    metrics.record_failure()
    metrics.observe_handler([0.002, 0.0025])  # a bucket holds what is <= its bound
    metrics.observe_handler([0.003, 100.0])  # batches add up
    text = generate_latest(metrics.registry).decode()
    assert 'warren_messages_total{outcome="acked",queue="q"} 3.0' in text
    assert 'warren_messages_total{outcome="retried",queue="q"} 0.0' in text
    assert 'warren_messages_total{outcome="dead-lettered",queue="q"} 1.0' in text
    assert 'warren_handler_failures_total{queue="q"} 1.0' in text
    assert 'warren_handler_seconds_bucket{le="0.001",queue="q"} 0.0' in text
    assert 'warren_handler_seconds_bucket{le="0.0025",queue="q"} 2.0' in text
    assert 'warren_handler_seconds_bucket{le="60.0",queue="q"} 3.0' in text
    assert 'warren_handler_seconds_bucket{le="+Inf",queue="q"} 4.0' in text
    assert 'warren_handler_seconds_count{queue="q"} 4.0' in text
    assert 'warren_handler_seconds_sum{queue="q"} 100.0075' in text
    assert metrics.snapshot() == {"processed": 3, "failed": 1, "retried": 0, "dead_lettered": 1}


def test_tune_gc_freezes_startup_objects_and_collects_young_ones_less_often() -> None:
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, before[1], before[2])
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
