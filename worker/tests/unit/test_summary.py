"""The summary line: what the journal leaves out at INFO, counted once per busy interval and at exit."""

from __future__ import annotations

import logging

import pytest
from conftest import Clock

from warren.metrics import Metrics
from warren.summary import Counts, Summary, summary_fields


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
