"""Failover time as a number: from a network cut healing, or the broker coming back, to the worker handling
again. Each test prints its figure; the assertion is the promise of docs/worker.md (within 30 s).

The worker runs with the default heartbeat (its profile sets none), through `NetCut` for the cut.
"""

from __future__ import annotations

import socket
import time

import pika
import pytest
from conftest import HOST, PORT, Broker, wait_for
from faults import broker_app_stopped, handled_ids, report
from netcut import NetCut

from warren.connection import DEFAULT_HEARTBEAT, connection_parameters
from warren.outgoing import OutgoingMessage
from warren.publisher import Publisher

pytestmark = pytest.mark.integration

HANDLER = {"test.#": "durablehandlers:record"}
PROMISE_SECONDS = 30.0
MESSAGES = 100


def publish_direct(mq: Broker) -> set[str]:
    """MESSAGES messages straight to the broker (never through the cut), all confirmed."""
    messages = [OutgoingMessage.json("test", "test.x", {"i": i}) for i in range(MESSAGES)]
    with Publisher(vhost=mq.vhost) as pub:
        assert pub.publish_many(messages).confirmed == MESSAGES
    return {m.message_id for m in messages}


def seconds_to_last_handled(mq: Broker, ids: set[str], since: float) -> float:
    """Wait (bounded) until every id was handled; seconds from `since` (time.time()) to the last of them."""
    wait_for(lambda: set(handled_ids(mq.records())) >= ids, 75, "every message handled")
    ends = [r["t"] for r in mq.records() if r["event"] == "end" and r["message_id"] in ids]
    return max(ends) - since


def test_consumption_resumes_soon_after_a_network_cut_heals(
    mq: Broker, capsys: pytest.CaptureFixture[str]
) -> None:
    cut_seconds = 20.0
    with NetCut() as net:
        config = mq.write_config(
            "test.work", HANDLER, broker={"endpoints": [net.url]}, consumer={"prefetch": 32, "concurrency": 8}
        )
        proc, log = mq.start_worker(config)
        # The worker's end goes at once, the broker's stays open and is told nothing: the half-dead connection
        # that keeps its prefetched deliveries until the broker's heartbeat timeout ends it.
        net.cut(drop_clients=True)
        cut_at = time.monotonic()
        ids = publish_direct(mq)
        wait_for(lambda: time.monotonic() - cut_at >= cut_seconds, cut_seconds + 5, "the cut to last")
        net.heal()
        healed_at = time.time()
        seconds = seconds_to_last_handled(mq, ids, healed_at)
        report(
            capsys,
            f"network cut of {cut_seconds:.0f}s, {MESSAGES} messages published meanwhile: the last handled "
            f"{seconds:.1f}s after the heal",
        )
        assert proc.poll() is None, log.read_text()
    assert seconds <= PROMISE_SECONDS


def test_consumption_resumes_soon_after_the_broker_returns(
    mq: Broker, capsys: pytest.CaptureFixture[str]
) -> None:
    config = mq.write_config("test.work", HANDLER)
    proc, log = mq.start_worker(config)
    down_seconds = 15.0  # long enough for the reconnect backoff to have grown
    with broker_app_stopped():
        down_at = time.monotonic()
        wait_for(lambda: "cannot connect" in log.read_text(), 30, "a refused reconnect")
        wait_for(lambda: time.monotonic() - down_at >= down_seconds, down_seconds + 5, "the outage to last")
    back_at = time.time()  # the listener accepts connections again
    ids = publish_direct(mq)
    seconds = seconds_to_last_handled(mq, ids, back_at)
    report(
        capsys,
        f"broker down {down_seconds:.0f}s: {MESSAGES} messages published once it was back, the last handled "
        f"{seconds:.1f}s after its return",
    )
    assert proc.poll() is None, log.read_text()
    assert seconds <= PROMISE_SECONDS


def test_the_connection_socket_carries_the_tcp_timeouts(mq: Broker) -> None:
    params = connection_parameters(
        f"amqp://{HOST}:{PORT}", vhost=mq.vhost, username="guest", password="guest", timeout=5, name="probe"
    )
    conn = pika.BlockingConnection(params)
    try:
        sock = (
            conn._impl._transport._sock
        )  # pika keeps its socket private; what the kernel holds is the proof
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == DEFAULT_HEARTBEAT * 1000
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == DEFAULT_HEARTBEAT
        assert conn._impl.params.heartbeat == DEFAULT_HEARTBEAT  # as negotiated with the broker
    finally:
        conn.close()
