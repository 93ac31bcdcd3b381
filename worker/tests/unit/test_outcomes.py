"""Outcome lines and the counts behind the metrics."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from conftest import FakeChannel, Props, deliver

from warren.logs import flush_logs, setup_logging
from warren.metrics import Metrics
from warren.outcomes import Outcome, OutcomeLog, outcome_values
from warren.retry import Action
from warren.session import Session


@pytest.mark.parametrize(
    ("seconds", "us"), [(None, None), (0.0, 0), (0.0000004, 0), (0.000263871, 264), (2.5, 2_500_000)]
)
def test_outcome_duration_is_whole_microseconds(seconds: float | None, us: int | None) -> None:
    d = Session(FakeChannel(), "q").receive(deliver(1), Props(), b"{}")
    assert outcome_values(d, seconds) == ("order.created", None, 1, us)


@pytest.mark.parametrize("fmt", ["plain", "json"])
def test_an_acked_line_rendered_ahead_is_the_line_record_writes(
    fmt: str, own_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging(fmt, "DEBUG")  # acked lines are DEBUG
    metrics = Metrics("q")
    outcomes = OutcomeLog("q", metrics)
    d = Session(FakeChannel(), "q").receive(deliver(1), Props(), b"{}")
    rendered = outcomes.render_acked(d, 0.000263871)
    assert rendered is not None
    outcomes.acked(1, [rendered])
    d.outcome = Outcome(Action.ACK, duration=0.000263871)
    outcomes.record(d)
    flush_logs()
    ahead, recorded = capsys.readouterr().out.splitlines()
    if fmt == "json":  # written a moment apart: only the timestamps may differ
        ahead, recorded = (line.split(", ", 1)[1] for line in (ahead, recorded))
    assert ahead == recorded
    assert metrics.snapshot()["processed"] == 2


def test_failures_say_why_and_are_counted(own_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("plain", "INFO")
    metrics = Metrics("q")
    outcomes = OutcomeLog("q", metrics)
    session = Session(FakeChannel(), "q")
    retried, dead = (session.receive(deliver(tag), Props(), b"{}") for tag in (1, 2))
    retried.outcome = Outcome(Action.RETRY, error="RuntimeError: boom", delay=0.18349, duration=0.0002)
    dead.outcome = Outcome(Action.DEAD_LETTER, reason="invalid-message", error="InvalidMessage: bad")
    outcomes.handler_failed()
    outcomes.record(retried)
    outcomes.record(dead)
    flush_logs()
    assert capsys.readouterr().out.splitlines() == [
        "WARNING warren.outcome: message retried outcome=retried queue=q routing_key=order.created "
        'message_id=None attempt=1 duration_us=200 retry_in_s=0.183 error="RuntimeError: boom"',
        "ERROR warren.outcome: message dead-lettered outcome=dead-lettered queue=q routing_key=order.created "
        'message_id=None attempt=1 duration_us=None reason=invalid-message error="InvalidMessage: bad"',
    ]
    assert metrics.snapshot() == {"processed": 0, "failed": 1, "retried": 1, "dead_lettered": 1}


def test_below_info_outcomes_are_counted_without_a_line(
    own_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging("plain", "WARNING")
    metrics = Metrics("q")
    d: Any = Session(FakeChannel(), "q").receive(deliver(1), Props(), b"{}")
    d.outcome = Outcome(Action.ACK, duration=0.001)
    OutcomeLog("q", metrics).record(d)
    flush_logs()
    assert capsys.readouterr().out == "" and metrics.snapshot()["processed"] == 1
    assert not logging.getLogger("warren.outcome").isEnabledFor(logging.INFO)
