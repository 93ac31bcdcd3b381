"""Consume + ack with the built-in handlers, prefetch, dead-lettering of bad input, retries."""

from __future__ import annotations

import json
import signal
import time

import pytest
from conftest import Broker, wait_for

from warren.publisher import Publisher

pytestmark = pytest.mark.integration


def stop(proc, timeout: float = 20) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=timeout)


def outcome_lines(log, outcome: str) -> list[str]:
    return [line for line in log.read_text().splitlines() if f"outcome={outcome}" in line]


def test_order_event_consumed_and_acked(mq: Broker) -> None:
    proc, log = mq.start_worker(mq.write_config("order.events", {"order.*": "warren.handlers:order_event"}))
    with Publisher(vhost=mq.vhost) as pub:
        mid = pub.publish("events", "order.created", {"order_id": 123, "event": "order.created"})
    wait_for(lambda: len(outcome_lines(log, "acked")) == 1, 15, "one acked outcome")
    assert stop(proc) == 0
    text = log.read_text()
    assert "Received event {'order_id': 123, 'event': 'order.created'}" in text
    assert "Processing event type order.created" in text
    (line,) = outcome_lines(log, "acked")
    assert f"message_id={mid}" in line and "routing_key=order.created" in line and "attempt=1" in line
    assert mq.depth("order.events") == 0
    assert mq.depth("order.events.dlq") == 0
