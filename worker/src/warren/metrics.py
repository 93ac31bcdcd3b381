"""Outcome counters (for sd_notify STATUS and Prometheus) and handler latency."""

from __future__ import annotations

from collections import Counter

from prometheus_client import CollectorRegistry, Histogram, start_http_server
from prometheus_client import Counter as PromCounter

OUTCOMES = ("acked", "retried", "dead-lettered")

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """`record_*` and `snapshot` belong to the I/O loop thread; `observe_handler` is thread-safe."""

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self.registry = CollectorRegistry()
        self._counts: Counter[str] = Counter()
        self._messages = PromCounter(
            "warren_messages",
            "Messages by final outcome of one delivery",
            ["queue", "outcome"],
            registry=self.registry,
        )
        self._failures = PromCounter(
            "warren_handler_failures", "Handler invocations that raised", ["queue"], registry=self.registry
        )
        self._latency = Histogram(
            "warren_handler_seconds", "Handler run time", ["queue"], buckets=_BUCKETS, registry=self.registry
        )
        # Children resolved once: labels() is a locked dict lookup on every call.
        self._by_outcome = {o: self._messages.labels(queue, o) for o in OUTCOMES}
        self._failed = self._failures.labels(queue)
        self._handler_seconds = self._latency.labels(queue)

    def record_outcome(self, outcome: str) -> None:
        self._counts[outcome] += 1
        self._by_outcome[outcome].inc()

    def record_failure(self) -> None:
        self._counts["failed"] += 1
        self._failed.inc()

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
