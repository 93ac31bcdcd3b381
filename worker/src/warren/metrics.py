"""Outcome counters (for sd_notify STATUS and Prometheus) and handler latency."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from warren.retry import Action

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# `le` labels exactly as the library's own Histogram writes them ("0.001", ..., "60.0", "+Inf").
_BUCKET_LABELS: tuple[str, ...] = tuple(
    floatToGoString(b)  # type: ignore[no-untyped-call]
    for b in (*_BUCKETS, float("inf"))
)


class Metrics(Collector):
    """Outcome counts and handler latency as plain numbers, updated on the I/O loop thread only.

    prometheus_client reads them at scrape time through `collect` (its custom-collector pattern): the
    library's Counters and Histograms take a lock on every update, and these figures change thousands of
    times a second while they are read a few times a minute. A scrape that runs while the loop writes sees
    every number whole; a histogram's sum may trail its counts by the observations of that instant.
    """

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self.registry = CollectorRegistry()
        # A plain dict: a Counter's item access goes through a subclass, on every message.
        self._counts: dict[str, int] = dict.fromkeys((*Action, "failed"), 0)
        self._latency_buckets = [0] * (len(_BUCKETS) + 1)  # the last one is +Inf
        self._latency_sum = 0.0
        self.registry.register(self)

    def collect(self) -> Iterator[Metric]:
        messages = CounterMetricFamily(
            "warren_messages", "Messages by final outcome of one delivery", labels=["queue", "outcome"]
        )
        for outcome in Action:
            messages.add_metric([self.queue, outcome.value], self._counts[outcome])
        yield messages
        failures = CounterMetricFamily(
            "warren_handler_failures", "Handler invocations that raised", labels=["queue"]
        )
        failures.add_metric([self.queue], self._counts["failed"])
        yield failures
        latency = HistogramMetricFamily("warren_handler_seconds", "Handler run time", labels=["queue"])
        cumulative, total = [], 0
        for label, count in zip(_BUCKET_LABELS, list(self._latency_buckets), strict=True):
            total += count
            cumulative.append((label, total))
        latency.add_metric([self.queue], cumulative, self._latency_sum)
        yield latency

    def record_outcome(self, outcome: str, count: int = 1) -> None:
        self._counts[outcome] += count

    def record_failure(self) -> None:
        self._counts["failed"] += 1

    def observe_handler(self, runs: Iterable[float]) -> None:
        """Count handler run times (seconds); the worker passes each batch of results at once."""
        buckets, total = self._latency_buckets, self._latency_sum
        for seconds in runs:
            # Bucket i counts observations <= _BUCKETS[i] (and above the bound before it).
            buckets[bisect_left(_BUCKETS, seconds)] += 1
            total += seconds
        self._latency_sum = total

    def snapshot(self) -> dict[str, int]:
        return {
            "processed": self._counts["acked"],
            "failed": self._counts["failed"],
            "retried": self._counts["retried"],
            "dead_lettered": self._counts["dead-lettered"],
        }

    def handler_totals(self) -> tuple[int, float]:
        """Handler runs observed and their total seconds (the latency histogram's count and sum)."""
        return sum(self._latency_buckets), self._latency_sum

    def serve(self, host: str, port: int) -> None:
        start_http_server(port, addr=host, registry=self.registry)
