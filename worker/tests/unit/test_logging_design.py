"""The production logging design: priorities for journald, outcome levels, summary, tutorial lines, pika."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any

import pika
import pika.exceptions as pex
import pytest
from conftest import Props
from pika.adapters.utils import connection_workflow as cw

import warren.logs
from warren import tutorial
from warren.consumer import Delivery, Worker
from warren.disconnects import failure_reason
from warren.handlers import InvalidMessage, Message, order_event
from warren.logs import FieldLine, JsonFormatter, PlainFormatter, flush_logs, journal_stream, setup_logging
from warren.metrics import Metrics
from warren.summary import Counts, Summary, summary_fields


@pytest.fixture
def own_logging() -> Any:
    root = logging.getLogger()
    saved = root.handlers[:], root.level, warren.logs._handler
    yield
    root.handlers[:], _, warren.logs._handler = saved
    root.setLevel(saved[1])
    warren.logs.quiet_pika(saved[1])


@pytest.fixture
def budget() -> Any:
    yield
    tutorial.configure(tutorial.DEFAULT_RATE)


def test_journal_stream_is_recognised_by_the_descriptor_itself(tmp_path: Path) -> None:
    with open(tmp_path / "out", "w") as fh:
        st = os.fstat(fh.fileno())
        env = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        assert journal_stream(env, fh.fileno())
        # Inherited by a process whose stdout went elsewhere: not the journal.
        assert not journal_stream({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"}, fh.fileno())
    for value in ("", "garbage", "1:", ":2"):
        assert not journal_stream({"JOURNAL_STREAM": value}, 1)


def _record(level: int) -> logging.LogRecord:
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
    assert PlainFormatter(journal=True).format(_record(level)) == f"{prefix}{name} warren.worker: broker gone"
    assert JsonFormatter(journal=True).format(_record(level)).startswith(prefix + "{")
    assert PlainFormatter().format(_record(level)) == f"{name} warren.worker: broker gone"  # a terminal


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


@pytest.mark.parametrize(
    ("err", "reason"),
    [
        (
            pex.AMQPConnectionError(
                cw.AMQPConnectionWorkflowFailed(
                    [cw.AMQPConnectorSocketConnectError(ConnectionRefusedError(111, "Connection refused"))]
                )
            ),
            "TCP connect failed: Connection refused",
        ),
        (
            cw.AMQPConnectionWorkflowFailed([socket.gaierror(-2, "Name or service not known")]),
            "address lookup failed: Name or service not known",
        ),
        (
            cw.AMQPConnectorAMQPHandshakeError(pex.IncompatibleProtocolError("StreamLostError", "EOF")),
            "AMQP handshake failed: IncompatibleProtocolError: ('StreamLostError', 'EOF')",
        ),
        (cw.AMQPConnectorStackTimeout("t"), "timed out before the connection was open"),
        (
            pex.ConnectionClosedByBroker(320, "CONNECTION_FORCED - broker forced connection closure"),
            "closed by the broker: 320 CONNECTION_FORCED - broker forced connection closure",
        ),
        (pex.StreamLostError("Transport indicated EOF"), "connection lost: Transport indicated EOF"),
        (pex.AMQPConnectionError(), "AMQPConnectionError"),
        (None, "no reason given"),
    ],
)
def test_failure_reason_names_the_phase_and_the_root_cause(err: BaseException | None, reason: str) -> None:
    assert failure_reason(err) == reason


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_line_budget_allows_rate_a_second_and_counts_the_rest() -> None:
    clock = Clock()
    budget = tutorial.LineBudget(2, clock)
    assert [budget.take() for _ in range(4)] == [True, True, False, False]
    clock.now += 1.0
    assert budget.take() and budget.skipped == 2
    assert not tutorial.LineBudget(0, clock).take()


def test_tutorial_lines_are_logged_for_the_first_messages_of_each_second(
    budget: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "warren.handlers")
    tutorial.configure(1)
    body = {"order_id": 1, "event": "order.created"}
    order_event(Message(body, "order.created", "events", "q", "id", 1, False))
    order_event(Message(body, "order.created", "events", "q", "id", 1, False))  # same second: no lines
    assert [r.getMessage() for r in caplog.records] == [
        "Received event {'order_id': 1, 'event': 'order.created'}",
        "Processing event type order.created",
    ]
    assert tutorial.skipped() == 1
    with pytest.raises(InvalidMessage):  # the lines are sampled, the checks never
        order_event(Message({"order_id": 1, "event": "x"}, "order.x", "events", "q", "id", 1, False))


def test_summary_fields_are_the_period_then_the_totals() -> None:
    before = Counts(acked=10, retried=1, dead_lettered=0, failed=1, handler_runs=11, handler_seconds=0.011)
    now = Counts(
        acked=40,
        retried=1,
        dead_lettered=2,
        failed=1,
        handler_runs=41,
        handler_seconds=0.041,
        tutorial_skipped=25,
    )
    assert summary_fields(before, now, 10.0) == {
        "period_s": 10.0,
        "acked": 30,
        "retried": 0,
        "dead_lettered": 2,
        "failed": 0,
        "msgs_per_s": 3.2,
        "handler_avg_us": 1000,
        "tutorial_lines_skipped": 25,
        "total_acked": 40,
        "total_retried": 1,
        "total_dead_lettered": 2,
    }


def test_summary_line_every_busy_interval_and_at_exit(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "warren.summary")
    clock, metrics = Clock(), Metrics("q")
    summary = Summary(metrics, "q", 60.0, clock)
    metrics.record_outcome("acked", 5)
    clock.now += 59.0
    summary.tick()
    assert caplog.records == []  # not due yet
    clock.now += 1.0
    summary.tick()
    (line,) = caplog.records
    assert line.getMessage() == "summary" and (line.acked, line.total_acked) == (5, 5)  # type: ignore[attr-defined]
    clock.now += 60.0
    summary.tick()
    assert len(caplog.records) == 1  # an idle minute writes nothing
    metrics.record_outcome("dead-lettered")
    summary.final()
    final = caplog.records[-1]
    assert final.getMessage() == "final summary"
    assert (final.dead_lettered, final.total_acked, final.total_dead_lettered) == (1, 5, 1)  # type: ignore[attr-defined]


def test_at_info_an_acked_message_writes_no_line_and_a_dead_letter_an_error(
    worker: Worker, own_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging("plain", "INFO", journal=True)
    spec = worker.router.lookup("order.created").target[0]  # type: ignore[union-attr]
    d = Delivery(worker._gen, 1, "events", "order.created", Props(), b"{}")
    worker._unacked[d.tag] = d
    worker._run_handler(
        d, spec, Message({"order_id": 1}, "order.created", "events", "order.events", None, 1, False)
    )
    worker._on_results()
    bad = Delivery(worker._gen, 2, "events", "order.created", pika.BasicProperties(), b"{")
    worker._unacked[bad.tag] = bad
    worker._republish_dead(bad, "invalid-message", "InvalidMessage: body is not JSON", None)
    worker._mark_done(bad)  # as the broker's confirm would
    worker._flush_acks()
    worker.summary.final()
    flush_logs()
    lines = [x for x in capsys.readouterr().out.splitlines() if "warren.handlers" not in x]
    assert len(lines) == 2, lines
    assert lines[0].startswith("<3>ERROR warren.outcome: message dead-lettered outcome=dead-lettered ")
    assert lines[1].startswith("<6>INFO warren.summary: final summary queue=order.events ")
    assert " acked=1 " in lines[1] and " dead_lettered=1 " in lines[1]
    assert worker._channel.acks == [(1, False), (2, False)]
