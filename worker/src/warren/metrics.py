"""Outcome counters (for sd_notify STATUS and Prometheus) and handler latency."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

OUTCOMES = ("acked", "retried", "dead-lettered")

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class _CountsCollector(Collector):
    """Exposes the I/O loop's plain counts at scrape time (prometheus_client's custom-collector pattern).

    A library Counter takes a lock on every increment; these counts change thousands of times a second
    and are read a few times a minute. The keys never change after start, so reading them from the
    HTTP thread while the loop increments is safe.
    """

    def __init__(self, queue: str, counts: Counter[str]) -> None:
        self.queue = queue
        self.counts = counts

    def collect(self) -> Iterator[Metric]:
        messages = CounterMetricFamily(
            "warren_messages", "Messages by final outcome of one delivery", labels=["queue", "outcome"]
        )
        for outcome in OUTCOMES:
            messages.add_metric([self.queue, outcome], self.counts[outcome])
        yield messages
        failures = CounterMetricFamily(
            "warren_handler_failures", "Handler invocations that raised", labels=["queue"]
        )
        failures.add_metric([self.queue], self.counts["failed"])
        yield failures


class Metrics:
    """`record_*` and `snapshot` belong to the I/O loop thread; `observe_handler` is thread-safe."""

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self.registry = CollectorRegistry()
        self._counts: Counter[str] = Counter(dict.fromkeys((*OUTCOMES, "failed"), 0))
        self.registry.register(_CountsCollector(queue, self._counts))
        self._latency = Histogram(
            "warren_handler_seconds", "Handler run time", ["queue"], buckets=_BUCKETS, registry=self.registry
        )
        # Child resolved once: labels() is a locked dict lookup on every call.
        self._handler_seconds = self._latency.labels(queue)

    def record_outcome(self, outcome: str) -> None:
        self._counts[outcome] += 1

    def record_failure(self) -> None:
        self._counts["failed"] += 1

    def observe_handler(self, seconds: float) -> None:
        self._handler_seconds.observe(seconds)

    def snapshot(self) -> dict[str, int]:
        return {
            "processed": self._counts["acked"],
            "failed": self._counts["failed"],
            "retried": self._counts["retried"],
            "dead_lettered": self._counts["dead-lettered"],
        }

    def serve(self, host: str, port: int) -> None:
        start_http_server(port, addr=host, registry=self.registry)
