"""Consume + ack with the built-in handlers, prefetch, dead-lettering of bad input, retries."""

from __future__ import annotations

import gzip
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


def test_jobs_and_whatsapp_builtins(mq: Broker) -> None:
    jobs, jobs_log = mq.start_worker(mq.write_config("jobs", {"jobs": "warren.handlers:job"}))
    wa, wa_log = mq.start_worker(
        mq.write_config("whatsapp.notifications", {"whatsapp": "warren.handlers:whatsapp_notification"})
    )
    with Publisher(vhost=mq.vhost) as pub:
        pub.publish("", "jobs", {"job": "test1", "seconds": 0.1})  # the path's job, simulated work
        pub.publish("notifications", "whatsapp", {"phone": "+911234567890", "message": "Your order shipped"})
        pub.publish("notifications", "whatsapp", {"phone": "+911234567890"})  # no "message"
    wait_for(lambda: outcome_lines(jobs_log, "acked"), 15, "job acked")
    wait_for(lambda: outcome_lines(wa_log, "dead-lettered"), 15, "bad notification dead-lettered")
    wait_for(lambda: outcome_lines(wa_log, "acked"), 15, "notification acked")
    assert stop(jobs) == 0 and stop(wa) == 0
    assert "Done job {'job': 'test1', 'seconds': 0.1}" in jobs_log.read_text()
    assert "Sending WhatsApp message to +911234567890: Your order shipped" in wa_log.read_text()
    (dead,) = mq.get_all("whatsapp.notifications.dlq")
    assert dead[0].headers["x-warren-reason"] == "invalid-message"
    assert dead[0].headers["x-warren-error"] == "InvalidMessage: missing required field message"
    assert mq.depth("jobs") == 0 and mq.depth("whatsapp.notifications") == 0


def test_prefetch_is_honoured(mq: Broker) -> None:
    prefetch = 3
    config = mq.write_config(
        "test.work",
        {"test.#": "testhandlers:record"},
        consumer={"prefetch": prefetch, "concurrency": prefetch},
    )
    proc, log = mq.start_worker(config)
    total = 3 * prefetch
    with Publisher(vhost=mq.vhost) as pub:
        for i in range(total):
            pub.publish("test", "test.slow", {"i": i, "sleep": 1.5})
    # While the first batch sleeps, exactly `prefetch` deliveries are out; the rest wait in the queue.
    wait_for(lambda: len(mq.records()) >= prefetch, 10, "first batch to start")
    time.sleep(0.5)
    assert [r["event"] for r in mq.records()] == ["start"] * prefetch
    assert mq.depth("test.work") == total - prefetch
    wait_for(lambda: len(outcome_lines(log, "acked")) == total, 30, "all acked")
    assert stop(proc) == 0
    events = sorted((r["t"], 1 if r["event"] == "start" else -1) for r in mq.records())
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    assert peak == prefetch
    assert mq.depth("test.work") == 0


def test_bad_input_is_dead_lettered_with_reason(mq: Broker) -> None:
    proc, log = mq.start_worker(mq.write_config("test.work", {"test.known": "testhandlers:record"}))
    not_json = mq.publish_raw("test", "test.known", b"{not json")
    not_utf8 = mq.publish_raw("test", "test.known", b'{"a": "\xff"}')
    not_object = mq.publish_raw("test", "test.known", b"[1, 2]")
    # JSON beyond the decoder's limits: deeper than its recursion limit, an integer of over 4,300 digits.
    too_deep = mq.publish_raw("test", "test.known", b"[" * 100_000)
    huge_int = mq.publish_raw("test", "test.known", b'{"n": 1' + b"0" * 5000 + b"}")
    gzipped = mq.publish_raw("test", "test.known", gzip.compress(b'{"a": 1}'), content_encoding="gzip")
    unhandled = mq.publish_raw("test", "test.other", b'{"a": 1}')
    good = mq.publish_raw("test", "test.known", b'{"a": 1}')
    wait_for(lambda: len(outcome_lines(log, "dead-lettered")) == 7, 15, "seven dead-letters")
    wait_for(lambda: len(outcome_lines(log, "acked")) == 1, 15, "the good message acked")
    assert proc.poll() is None, "worker must survive bad input"
    assert stop(proc) == 0
    dead = {p.message_id: p.headers for p, _ in mq.get_all("test.work.dlq")}
    assert set(dead) == {not_json, not_utf8, not_object, too_deep, huge_int, gzipped, unhandled}
    for mid in (not_json, not_utf8, not_object, too_deep, huge_int, gzipped):
        assert dead[mid]["x-warren-reason"] == "invalid-message"
        assert dead[mid]["x-warren-origin-queue"] == "test.work"
        assert dead[mid]["x-warren-exchange"] == "test"
        assert dead[mid]["x-warren-routing-key"] == "test.known"
    assert dead[not_json]["x-warren-error"].startswith("InvalidMessage: body is not JSON")
    assert dead[not_utf8]["x-warren-error"].startswith("InvalidMessage: body is not UTF-8")
    assert dead[not_object]["x-warren-error"] == "InvalidMessage: body must be a JSON object, got list"
    assert dead[too_deep]["x-warren-error"] == "InvalidMessage: body is nested too deep for the JSON decoder"
    assert dead[huge_int]["x-warren-error"].startswith("InvalidMessage: body is beyond the JSON decoder")
    assert dead[gzipped]["x-warren-error"] == "InvalidMessage: unsupported content encoding 'gzip'"
    assert dead[unhandled]["x-warren-reason"] == "unhandled-routing-key"
    assert dead[unhandled]["x-warren-routing-key"] == "test.other"
    assert [r["message_id"] for r in mq.records() if r["event"] == "end"] == [good]
    assert mq.depth("test.work") == 0


def test_handler_error_is_retried_then_dead_lettered(mq: Broker) -> None:
    proc, log = mq.start_worker(mq.write_config("test.work", {"test.#": "testhandlers:fail"}))
    with Publisher(vhost=mq.vhost) as pub:
        doomed = pub.publish("test", "test.fail", {"n": 1})
        recovers = pub.publish("test", "test.fail", {"n": 2, "succeed_on": 2})
    wait_for(lambda: outcome_lines(log, "dead-lettered"), 20, "retries exhausted")
    wait_for(lambda: outcome_lines(log, "acked"), 20, "second message acked")
    assert stop(proc) == 0
    attempts = [(r["message_id"], r["attempt"], r["event"]) for r in mq.records()]
    assert [a for m, a, e in attempts if m == doomed and e == "start"] == [1, 2, 3]
    assert [a for m, a, e in attempts if m == recovers and e == "start"] == [1, 2]
    assert len(outcome_lines(log, "retried")) == 3  # doomed: 1->2, 2->3; recovers: 1->2
    (dead,) = mq.get_all("test.work.dlq")
    props, body = dead
    assert props.message_id == doomed
    assert json.loads(body) == {"n": 1}
    assert props.delivery_mode == 2
    assert props.headers["x-warren-reason"] == "retries-exhausted"
    assert props.headers["x-warren-error"] == "RuntimeError: boom on attempt 3"
    assert props.headers["x-warren-attempt"] == 3
    assert props.headers["x-warren-routing-key"] == "test.fail"
    assert props.headers["x-warren-exchange"] == "test"
    assert props.headers["x-warren-origin-queue"] == "test.work"
    for queue in ("test.work", "test.work.retry"):
        assert mq.depth(queue) == 0
