"""The summary line: what the journal leaves out at the default level, counted, once per interval.

At INFO a worker writes no line per acknowledged message (warren.outcomes.OUTCOME_LEVELS), and the built-in
handlers' tutorial lines are sampled (warren.tutorial). Every `interval` seconds in which the worker
finished anything, and once when it stops, it writes one INFO line with the outcomes of that period, the
handler's mean run time, the tutorial lines left out, and the totals since it started. The exact figures
are the metrics and the sd_notify status, which every outcome updates; this line puts them in the journal.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from warren import tutorial
from warren.metrics import Metrics

log = logging.getLogger("warren.summary")

DEFAULT_INTERVAL = 60.0


@dataclass(frozen=True)
class Counts:
    acked: int = 0
    retried: int = 0
    dead_lettered: int = 0
    failed: int = 0
    handler_runs: int = 0
    handler_seconds: float = 0.0
    tutorial_skipped: int = 0

    @property
    def finished(self) -> int:
        return self.acked + self.retried + self.dead_lettered


def counts_of(metrics: Metrics, tutorial_skipped: int) -> Counts:
    c = metrics.snapshot()
    runs, seconds = metrics.handler_totals()
    return Counts(
        c["processed"], c["retried"], c["dead_lettered"], c["failed"], runs, seconds, tutorial_skipped
    )


def summary_fields(before: Counts, now: Counts, seconds: float) -> dict[str, Any]:
    """The line's fields for the period from `before` to `now` (`seconds` long), then the totals."""
    runs = now.handler_runs - before.handler_runs
    handler_us = (now.handler_seconds - before.handler_seconds) / runs * 1e6 if runs else None
    return {
        "period_s": round(seconds, 1),
        "acked": now.acked - before.acked,
        "retried": now.retried - before.retried,
        "dead_lettered": now.dead_lettered - before.dead_lettered,
        "failed": now.failed - before.failed,
        "msgs_per_s": round((now.finished - before.finished) / seconds, 1) if seconds > 0 else None,
        "handler_avg_us": None if handler_us is None else round(handler_us),
        "tutorial_lines_skipped": now.tutorial_skipped - before.tutorial_skipped,
        "total_acked": now.acked,
        "total_retried": now.retried,
        "total_dead_lettered": now.dead_lettered,
    }


class Summary:
    """Writes the summary line for one worker; `tick` is called from the worker's loop, often."""

    def __init__(
        self,
        metrics: Metrics,
        queue: str,
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.metrics = metrics
        self.queue = queue
        self.interval = interval  # 0: only the final line
        self._clock = clock
        self._since = clock()
        self._last = Counts()

    def _counts(self) -> Counts:
        return counts_of(self.metrics, tutorial.skipped())

    def tick(self) -> None:
        if not self.interval:
            return
        now = self._clock()
        if now - self._since < self.interval:
            return
        counts = self._counts()
        if counts.finished == self._last.finished and counts.failed == self._last.failed:
            self._since = now  # an idle period: no line, the next one counts from here
            return
        self._write("summary", counts, now)

    def final(self) -> None:
        """The last line, at exit: the period since the previous one and the process's totals."""
        self._write("final summary", self._counts(), self._clock())

    def _write(self, msg: str, counts: Counts, now: float) -> None:
        fields = summary_fields(self._last, counts, now - self._since)
        log.info(msg, extra={"queue": self.queue, **fields})
        self._last, self._since = counts, now
