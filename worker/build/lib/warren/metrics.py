"""Outcome counters (for sd_notify STATUS and Prometheus) and handler latency."""

from __future__ import annotations

import threading
from collections import Counter

from prometheus_client import CollectorRegistry, Histogram, start_http_server
from prometheus_client import Counter as PromCounter

OUTCOMES = ("acked", "retried", "dead-lettered")

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """Thread-safe; `record_*` are called from the I/O loop, `observe_handler` from pool threads."""

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self.registry = CollectorRegistry()
        self._lock = threading.Lock()
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
        for outcome in OUTCOMES:
            self._messages.labels(queue, outcome)
        self._failures.labels(queue)
        self._latency.labels(queue)

    def record_outcome(self, outcome: str) -> None:
        with self._lock:
            self._counts[outcome] += 1
        self._messages.labels(self.queue, outcome).inc()

    def record_failure(self) -> None:
        with self._lock:
            self._counts["failed"] += 1
        self._failures.labels(self.queue).inc()

    def observe_handler(self, seconds: float) -> None:
        self._latency.labels(self.queue).observe(seconds)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {
                "processed": self._counts["acked"],
                "failed": self._counts["failed"],
                "retried": self._counts["retried"],
                "dead_lettered": self._counts["dead-lettered"],
            }

    def serve(self, host: str, port: int) -> None:
        start_http_server(port, addr=host, registry=self.registry)
