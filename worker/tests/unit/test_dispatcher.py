"""The dispatcher: delivery -> handler run -> ack, retry or dead letter, through its callbacks."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pika
import pytest
from conftest import FakeChannel, confirm, deliver, wait_for

import warren.dispatcher
import warren.logs
from warren.config import HandlerSpec, WorkerConfig
from warren.dispatcher import Dispatcher
from warren.handlers import Message
from warren.logs import flush_logs, setup_logging
from warren.metrics import Metrics
from warren.outcomes import OutcomeLog
from warren.session import Session
from warren.summary import Summary

ORDER = b'{"order_id": 1, "event": "order.created"}'


def props(message_id: str = "m-1", headers: dict[str, Any] | None = None) -> Any:
    return pika.BasicProperties(message_id=message_id, headers=headers)


def outcome_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    flush_logs()
    return [x for x in capsys.readouterr().out.splitlines() if x.startswith("DEBUG warren.outcome:")]


def test_acked_line_rendered_by_the_handler_is_written_only_when_the_ack_is_queued(
    dispatcher: Dispatcher,
    wakes: list[Callable[[], None]],
    own_logging: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup_logging("plain", "DEBUG")  # acked lines are DEBUG (warren.outcomes.OUTCOME_LEVELS)
    gone = dispatcher.session
    assert gone is not None
    dispatcher.on_message(None, deliver(1), props(), ORDER)
    wait_for(lambda: wakes)
    dispatcher.session = Session(
        FakeChannel(), "order.events"
    )  # its channel went away before the loop saw it
    dispatcher.on_results()
    assert outcome_lines(capsys) == [] and gone.channel.acks == []

    ch = dispatcher.session.channel
    wakes.clear()
    dispatcher.on_message(None, deliver(2), props(), ORDER)
    wait_for(lambda: wakes)
    assert outcome_lines(capsys) == []  # the handler returned, but its line is not written yet
    assert wakes == [dispatcher.on_results]
    dispatcher.on_results()
    (line,) = outcome_lines(capsys)
    assert line.startswith("DEBUG warren.outcome: message acked outcome=acked queue=order.events ")
    assert "routing_key=order.created message_id=m-1 attempt=1 duration_us=" in line
    assert ch.acks == [(2, False)] and dispatcher.outcomes.metrics.snapshot()["processed"] == 1


def test_acked_line_is_rendered_on_the_handler_thread_as_the_handler_returns(
    dispatcher: Dispatcher,
    wakes: list[Callable[[], None]],
    own_logging: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    setup_logging("json", "DEBUG")
    dispatcher.on_message(None, deliver(1), props(), ORDER)
    wait_for(lambda: wakes)
    later = 4_102_444_800.0  # 2100-01-01: what the clock says when the loop takes the result
    monkeypatch.setattr(warren.logs, "time", SimpleNamespace(time=lambda: later))
    dispatcher.on_results()
    flush_logs()
    [doc] = [json.loads(x) for x in capsys.readouterr().out.splitlines() if '"warren.outcome"' in x]
    assert doc["outcome"] == "acked" and doc["ts"] != later


def test_acked_line_goes_through_logging_with_its_duration_when_a_handler_listens(
    dispatcher: Dispatcher,
    wakes: list[Callable[[], None]],
    own_logging: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    setup_logging("plain", "DEBUG")
    listened = logging.getLogger("warren.outcome")
    listened.addHandler(caplog.handler)
    try:
        aside = Session(FakeChannel(), "order.events").receive(deliver(9), props(), ORDER)
        assert (
            dispatcher.outcomes.render_acked(aside, 0.1) is None
        )  # not rendered ahead: must reach the listener
        dispatcher.on_message(None, deliver(1), props(), ORDER)
        wait_for(lambda: wakes)
        dispatcher.on_results()
    finally:
        listened.removeHandler(caplog.handler)
    [record] = [r for r in caplog.records if r.name == "warren.outcome"]
    assert (record.getMessage(), record.outcome) == ("message acked", "acked")  # type: ignore[attr-defined]
    assert isinstance(record.duration_us, int)  # type: ignore[attr-defined]
    assert dispatcher.session is not None and dispatcher.session.channel.acks == [(1, False)]


def test_an_unforeseen_decoding_failure_dead_letters_instead_of_ending_the_connection(
    dispatcher: Dispatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_decoder(*_: Any) -> Any:
        raise LookupError("decoder bug")

    monkeypatch.setattr(warren.dispatcher, "decode_body", broken_decoder)
    session = dispatcher.session
    assert session is not None
    ch = session.channel
    dispatcher.on_message(None, deliver(7), props("m-7"), b"{}")
    ((exchange, routing_key, body, dead),) = ch.published
    assert (exchange, routing_key, body) == ("warren.dlx", "order.events", b"{}")
    assert dead.headers["x-warren-reason"] == "invalid-message"
    assert dead.headers["x-warren-error"] == "LookupError: decoder bug"
    assert ch.acks == [] and session.in_flight == 1  # acked only once the broker confirms the dead letter
    dispatcher.on_confirm(confirm(1))
    assert ch.acks == [(7, False)] and session.in_flight == 0
    assert dispatcher.outcomes.metrics.snapshot()["dead_lettered"] == 1


def test_a_failing_handler_is_retried_then_dead_lettered_once_its_attempts_are_spent(
    profile: WorkerConfig, wakes: list[Callable[[], None]]
) -> None:
    def boom(_message: Message) -> None:
        raise RuntimeError("boom")

    config = dataclasses.replace(
        profile,
        handlers=(HandlerSpec("#", "tests:boom", boom),),
        retry=dataclasses.replace(profile.retry, max_attempts=2),
    )
    settled: list[None] = []
    metrics = Metrics("order.events")
    dispatcher = Dispatcher(
        config, OutcomeLog("order.events", metrics), wakes.append, lambda: settled.append(None)
    )
    ch = FakeChannel()
    dispatcher.session = Session(ch, "order.events")
    dispatcher.pool.start()
    try:
        dispatcher.on_message(None, deliver(1), props(headers={"trace": "t"}), b'{"a": 1}')
        wait_for(lambda: wakes)
        dispatcher.on_results()
        ((exchange, routing_key, body, retry),) = ch.published
        assert (exchange, routing_key, body) == ("warren.retry", "order.events", b'{"a": 1}')
        assert retry.headers == {
            "trace": "t",
            "x-warren-attempt": 2,
            "x-warren-exchange": "events",
            "x-warren-routing-key": "order.created",
            "x-warren-error": "RuntimeError: boom",
        }
        assert 500 <= int(retry.expiration) <= 1000  # initial_delay 1 s with equal jitter
        assert (retry.message_id, retry.delivery_mode) == ("m-1", 2)
        assert ch.acks == []
        dispatcher.on_confirm(confirm(1))
        assert ch.acks == [(1, False)] and settled

        # Back from order.events.retry through the default exchange: the second and last attempt.
        wakes.clear()
        dispatcher.on_message(None, deliver(2, "order.events", ""), props(headers=retry.headers), b'{"a": 1}')
        wait_for(lambda: wakes)
        dispatcher.on_results()
        exchange, routing_key, _body, dead = ch.published[1]
        assert (exchange, routing_key, dead.expiration) == ("warren.dlx", "order.events", None)
        assert dead.headers["x-warren-reason"] == "retries-exhausted"
        assert dead.headers["x-warren-routing-key"] == "order.created"
        dispatcher.on_confirm(confirm(2))
        assert ch.acks[1:] == [(2, False)]
        assert metrics.snapshot() == {"processed": 0, "failed": 2, "retried": 1, "dead_lettered": 1}
    finally:
        dispatcher.pool.shutdown()


def test_an_unroutable_republish_is_reported_and_its_original_held(
    dispatcher: Dispatcher, caplog: pytest.LogCaptureFixture
) -> None:
    session = dispatcher.session
    assert session is not None
    dispatcher.on_message(None, deliver(3), props(), b"not json")
    method = pika.spec.Basic.Return(
        reply_code=312, reply_text="NO_ROUTE", exchange="warren.dlx", routing_key="order.events"
    )
    with caplog.at_level(logging.ERROR, "warren.worker"):
        dispatcher.on_return(None, method, props(), b"not json")
    assert "is order.events.dlq declared and bound?" in caplog.text
    dispatcher.on_confirm(confirm(1))
    assert session.channel.acks == [] and session.in_flight == 1 and session.settled()


def test_at_info_an_acked_message_writes_no_line_and_a_dead_letter_an_error(
    dispatcher: Dispatcher,
    wakes: list[Callable[[], None]],
    own_logging: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup_logging("plain", "INFO", journal=True)
    session = dispatcher.session
    assert session is not None
    dispatcher.on_message(None, deliver(1), props(), ORDER)
    wait_for(lambda: wakes)
    dispatcher.on_results()
    dispatcher.on_message(None, deliver(2), props("bad"), b"{")  # not JSON: dead-lettered
    dispatcher.on_confirm(confirm(1))  # the broker stored the dead letter
    Summary(dispatcher.outcomes.metrics, "order.events").final()
    flush_logs()
    lines = [x for x in capsys.readouterr().out.splitlines() if "warren.handlers" not in x]
    assert len(lines) == 2, lines
    assert lines[0].startswith("<3>ERROR warren.outcome: message dead-lettered outcome=dead-lettered ")
    assert lines[1].startswith("<6>INFO warren.summary: final summary queue=order.events ")
    assert " acked=1 " in lines[1] and " dead_lettered=1 " in lines[1]
    assert session.channel.acks == [(1, False), (2, False)]
