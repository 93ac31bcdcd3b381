"""What the worker holds and runs at once, and what a retry looks like on the wire: a drain hands back
everything beyond prefetch, concurrency caps handlers below prefetch, and each retry republish carries the
documented expiration and attempt header, its gaps at least the backoff's lower bounds."""

from __future__ import annotations

import itertools
import signal

import pika
import pytest
from conftest import Broker, wait_for
from faults import handled_ids
from pika.adapters.blocking_connection import BlockingChannel
from test_consume import outcome_lines, stop

from warren.outgoing import OutgoingMessage
from warren.publisher import Publisher

pytestmark = pytest.mark.integration

HANDLER = {"test.#": "durablehandlers:record"}


def publish(mq: Broker, bodies: list[dict[str, object]]) -> list[str]:
    messages = [OutgoingMessage.json("test", "test.x", body) for body in bodies]
    with Publisher(vhost=mq.vhost) as pub:
        assert pub.publish_many(messages).confirmed == len(messages)
    return [m.message_id for m in messages]


def test_drain_with_more_queued_than_prefetch_handles_only_what_it_holds(mq: Broker) -> None:
    # Each handler runs 2 s, far longer than a SIGTERM takes to cancel the consumer: no ack frees a slot.
    ids = publish(mq, [{"i": i, "sleep": 2.0} for i in range(10)])
    config = mq.write_config("test.work", HANDLER, consumer={"prefetch": 4, "concurrency": 4})
    proc, log = mq.start_worker(config)
    wait_for(lambda: len(mq.records()) >= 4, 15, "the four prefetched messages to start")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    handled = handled_ids(mq.records())
    assert len(handled) == 4 and all(n == 1 for n in handled.values())
    assert set(handled) == set(ids[:4])  # the first four, in queue order
    assert len(outcome_lines(log, "acked")) == 4
    assert mq.depth("test.work") == 6


def test_concurrency_below_prefetch_runs_at_most_that_many_handlers(mq: Broker) -> None:
    ids = publish(mq, [{"i": i, "sleep": 0.3} for i in range(12)])
    config = mq.write_config("test.work", HANDLER, consumer={"prefetch": 6, "concurrency": 2})
    proc, log = mq.start_worker(config)
    wait_for(lambda: len(outcome_lines(log, "acked")) == 12, 30, "all acked")
    assert stop(proc) == 0
    starts = [r for r in mq.records() if r["event"] == "start"]
    # `running` is how many handlers were inside the handler, counted by the handler itself as it began.
    assert max(r["running"] for r in starts) == 2
    assert set(handled_ids(mq.records())) == set(ids)


def peek(channel: BlockingChannel, queue: str) -> pika.BasicProperties | None:
    """The properties of the message at the head of `queue`, which is put back where it was (not consumed)."""
    method, props, _body = channel.basic_get(queue, auto_ack=False)
    if method is None:
        return None
    channel.basic_reject(method.delivery_tag, requeue=True)
    return props


def test_retry_on_the_wire_carries_expiration_and_next_attempt(mq: Broker) -> None:
    initial, multiplier, maximum, max_attempts = 1.0, 2.0, 2.0, 4
    retry = {"initial_delay": initial, "multiplier": multiplier, "max_delay": maximum}

    def nominal(attempt: int) -> float:  # docs/worker.md: delay before attempt n+1
        return min(maximum, initial * multiplier ** (attempt - 1))

    retry["max_attempts"] = max_attempts
    config = mq.write_config("test.work", {"test.#": "durablehandlers:fail"}, retry=retry)
    proc, log = mq.start_worker(config)
    (mid,) = publish(mq, [{"n": 1}])
    seen: dict[int, pika.BasicProperties] = {}  # x-warren-attempt -> properties of the message in Q.retry
    conn = pika.BlockingConnection(mq.params())
    try:
        channel = conn.channel()

        def peek_retry_queue() -> bool:
            props = peek(channel, "test.work.retry")
            if props is not None:
                seen.setdefault(props.headers["x-warren-attempt"], props)
            return len(seen) == max_attempts - 1

        # Each retry waits at least half a second in Q.retry, many times the 20 ms between two looks.
        wait_for(peek_retry_queue, 30, "each retry in test.work.retry", interval=0.02)
    finally:
        conn.close()
    wait_for(lambda: outcome_lines(log, "dead-lettered"), 15, "retries exhausted")
    assert stop(proc) == 0
    assert sorted(seen) == [2, 3, 4]
    for attempt in range(1, max_attempts):
        props = seen[attempt + 1]
        assert props.message_id == mid and props.delivery_mode == 2
        d = nominal(attempt) * 1000
        assert d / 2 <= int(props.expiration) <= d, f"attempt {attempt}: expiration {props.expiration} ms"
    starts = [r["t"] for r in mq.records() if r["event"] == "start"]
    assert [r["attempt"] for r in mq.records()] == [1, 2, 3, 4]
    for attempt, (before, after) in enumerate(itertools.pairwise(starts), 1):
        assert after - before >= nominal(attempt) / 2, f"attempt {attempt + 1}: {after - before:.2f}s later"
    assert mq.depth("test.work.dlq") == 1 and mq.depth("test.work.retry") == 0 and mq.depth("test.work") == 0
