"""Faults the worker promises to survive without losing a message: the broker restarting under it, the worker
killed with SIGKILL mid-stream, and the broker refusing (nacking) a retry republish.

Handlers record through `durablehandlers` (one fsync'ed append per record), so what they did is counted even
when the worker's own buffered log dies with it.
"""

from __future__ import annotations

import json
import os
import signal

import pytest
from conftest import HOST, PORT, Broker, wait_for
from faults import acked_ids, broker_app_stopped, duplicates, handled_ids, report
from test_consume import outcome_lines, stop

from warren.outgoing import OutgoingMessage
from warren.publisher import Publisher
from warren.session import REFUSED_REQUEUE_SECONDS

pytestmark = pytest.mark.integration

HANDLER = {"test.#": "durablehandlers:record"}
LIVE = f"amqp://{HOST}:{PORT}"


def publish(mq: Broker, total: int, sleep: float) -> set[str]:
    messages = [OutgoingMessage.json("test", "test.x", {"i": i, "sleep": sleep}) for i in range(total)]
    with Publisher(vhost=mq.vhost) as pub:
        result = pub.publish_many(messages)
    assert result.confirmed == total
    return {m.message_id for m in messages}


def test_broker_restart_with_work_in_flight_loses_nothing(
    mq: Broker, capsys: pytest.CaptureFixture[str]
) -> None:
    prefetch = 20
    config = mq.write_config("test.work", HANDLER, consumer={"prefetch": prefetch, "concurrency": 4})
    proc, log = mq.start_worker(config)
    ids = publish(mq, 240, sleep=0.1)  # 6 s of work at concurrency 4, longer than the restart
    wait_for(lambda: len(handled_ids(mq.records())) >= 30, 30, "some messages handled before the restart")
    with broker_app_stopped():
        # The refused-connection phase: the worker backs off and retries while nothing listens.
        wait_for(lambda: f"cannot connect to {LIVE}" in log.read_text(), 30, "a refused reconnect")
        assert len(handled_ids(mq.records())) < len(ids), "the restart must come while work is in flight"
    wait_for(lambda: log.read_text().count("consuming test.work") >= 2, 60, "the worker to reconnect")
    wait_for(lambda: set(acked_ids(log)) == ids, 60, "every message acked after the restart")
    assert proc.poll() is None, "the worker must ride out a broker restart in the same process"
    assert stop(proc) == 0
    assert f"connection to {LIVE} lost" in log.read_text()
    handled, acked = handled_ids(mq.records()), acked_ids(log)
    report(
        capsys,
        f"broker restart: {len(ids)} messages, {duplicates(handled)} handled twice, "
        f"{duplicates(acked)} acked twice (at least once: only the {prefetch} held at the cut may repeat)",
    )
    assert set(handled) == ids
    assert {r["pid"] for r in mq.records()} == {proc.pid}, "every message handled by the one worker process"
    # Each message was acked once, except those the worker held when the connection was cut: those may be
    # handled and acked again after the broker redelivers them, and there are at most `prefetch` of them.
    assert duplicates(acked) <= prefetch and duplicates(handled) <= prefetch
    assert all(handled[mid] >= n for mid, n in acked.items()), "acked again, not handled again"
    assert mq.depth("test.work") == 0 and mq.depth("test.work.dlq") == 0 and mq.depth("test.work.retry") == 0


def test_sigkill_mid_stream_loses_nothing(mq: Broker, capsys: pytest.CaptureFixture[str]) -> None:
    prefetch, kills = 10, 3
    config = mq.write_config("test.work", HANDLER, consumer={"prefetch": prefetch, "concurrency": 4})
    ids = publish(mq, 300, sleep=0.02)
    interrupted: set[str] = set()  # started in a process that was killed before they finished
    for n in range(1, kills + 1):
        proc, _log = mq.start_worker(config)
        # Kill at a different point each time, while the worker holds deliveries it has not acked yet.
        target = len(handled_ids(mq.records())) + 15 * n
        wait_for(lambda t=target: len(handled_ids(mq.records())) >= t, 30, f"progress before kill {n}")
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
        assert len(set(handled_ids(mq.records()))) < len(ids), "each kill must come mid-stream"
        events = {(r["event"], r["message_id"]) for r in mq.records() if r["pid"] == proc.pid}
        interrupted |= {mid for event, mid in events if event == "start" and ("end", mid) not in events}
    assert interrupted, "no kill landed while a handler ran: the test proved nothing"
    proc, _log = mq.start_worker(config)
    wait_for(lambda: set(handled_ids(mq.records())) == ids, 60, "every message handled after the kills")
    wait_for(lambda: mq.depth("test.work") == 0, 15, "the queue to empty")
    assert stop(proc) == 0
    handled = handled_ids(mq.records())
    report(
        capsys,
        f"SIGKILL x{kills}: {len(ids)} messages, {len(interrupted)} handlers cut short and run again, "
        f"{duplicates(handled)} handled to the end more than once",
    )
    assert set(handled) == ids
    # Only what a killed worker held unacked (at most `prefetch` each time) can run again.
    assert duplicates(handled) <= kills * prefetch
    assert mq.depth("test.work.dlq") == 0 and mq.depth("test.work.retry") == 0


def test_nacked_retry_republish_requeues_the_original(mq: Broker) -> None:
    ch = mq.channel()
    ch.queue_delete("test.work.retry")
    # A retry queue that refuses every message: the broker nacks the worker's republish.
    ch.queue_declare(
        "test.work.retry",
        durable=True,
        arguments={
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": "test.work",
            "x-overflow": "reject-publish",
            "x-max-length": 0,
        },
    )
    ch.queue_bind("test.work.retry", "warren.retry", routing_key="test.work")
    ch.connection.close()
    proc, log = mq.start_worker(mq.write_config("test.work", {"test.#": "durablehandlers:fail"}))
    with Publisher(vhost=mq.vhost) as pub:
        mid = pub.publish("test", "test.fail", {"n": 1})

    def nack_warning() -> list[str]:
        return [ln for ln in log.read_text().splitlines() if ln.startswith("WARNING") and "nack" in ln]

    wait_for(nack_warning, 15, "a warning about the refused republish")
    assert mid in nack_warning()[0]
    # Requeued after a pause, not at once: an immediate requeue comes straight back, fails and is refused
    # again, hundreds of times a second.
    wait_for(lambda: len(nack_warning()) >= 2, 20, "the requeued original to be refused a second time")
    first, second = sorted(r["t"] for r in mq.records() if r["message_id"] == mid)[:2]
    assert second - first >= REFUSED_REQUEUE_SECONDS
    assert stop(proc) == 0
    assert not outcome_lines(log, "acked") and not outcome_lines(log, "retried")
    assert not outcome_lines(log, "dead-lettered")
    # Requeued, not acked: the original is back in its queue, as it was published.
    back = mq.get_all("test.work")
    assert len(back) == 1, "the original was lost"
    ((props, body),) = back
    assert props.message_id == mid and json.loads(body) == {"n": 1}
    assert "x-warren-attempt" not in (props.headers or {})
    assert mq.depth("test.work.retry") == 0 and mq.depth("test.work.dlq") == 0
