"""A broker resource alarm (here the memory alarm) blocks publishers: warren-publish and the worker's
republishes say so by name, not as a bare timeout. The watermark is restored whatever happens."""

from __future__ import annotations

import pytest
from conftest import Broker, wait_for
from faults import memory_alarm

from warren.exits import EX_UNCONFIRMED

pytestmark = pytest.mark.integration

BLOCKED = "broker blocked publishing: low on memory"


def test_publish_during_a_memory_alarm_names_it(mq: Broker) -> None:
    with memory_alarm():
        out = mq.run(
            "warren-publish", "--vhost", mq.vhost, "--timeout", "3", "--routing-key", "test.work", '{"a":1}'
        )
    assert out.returncode == EX_UNCONFIRMED, out.stderr
    assert f"warren-publish: {BLOCKED}; no confirms within 3s" in out.stderr, out.stderr


def test_worker_retry_during_a_memory_alarm_names_it(mq: Broker) -> None:
    config = mq.write_config("test.work", {"test.#": "testhandlers:slow_fail"}, retry={"max_attempts": 10})
    proc, log = mq.start_worker(config)
    mq.publish_raw("test", "test.x", b'{"sleep": 1}', content_type="application/json")
    wait_for(lambda: mq.records(), 10, "the handler to start")
    with memory_alarm():
        # The handler keeps failing after 1 s; a retry republish meets the alarm.
        wait_for(lambda: BLOCKED in log.read_text(), 15, "the worker to name the alarm")
    wait_for(lambda: "broker unblocked publishing" in log.read_text(), 15, "the worker to say it is over")
    text = log.read_text()
    blocked_at = text.index(BLOCKED)
    wait_for(
        lambda: "outcome=retried" in log.read_text()[blocked_at:], 15, "a retry confirmed after the alarm"
    )
    text = log.read_text()
    # The republish that met the alarm was confirmed, and its retry line written, only once it was over.
    assert "outcome=" not in text[blocked_at : text.index("broker unblocked publishing")]
    assert f"WARNING warren.worker: {BLOCKED} (amqp://127.0.0.1:5672): retries and dead letters wait" in text
    assert proc.poll() is None
