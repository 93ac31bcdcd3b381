"""The Prometheus exposition of the worker's counts and latency."""

from __future__ import annotations

from prometheus_client import generate_latest

from warren.metrics import Metrics


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
