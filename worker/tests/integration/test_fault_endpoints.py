"""Broker endpoints that fail: failover past a dead endpoint, a worker with no reachable broker that stays up
(backoff, systemd watchdog, a clean SIGTERM), and refusals that are final (exit 77: vhost, queue)."""

from __future__ import annotations

import itertools
import signal
import subprocess
import time
import uuid

import pytest
from conftest import BIN, HOST, PORT, Broker, rabbitmqctl, wait_for
from faults import NotifyListener, dead_port
from test_consume import outcome_lines, stop

from warren.publisher import Publisher

pytestmark = pytest.mark.integration

HANDLER = {"test.#": "durablehandlers:record"}
LIVE = f"amqp://{HOST}:{PORT}"


def test_failover_past_a_dead_endpoint_consumes_from_the_live_one(mq: Broker) -> None:
    with dead_port() as port:
        dead = f"amqp://{HOST}:{port}"
        config = mq.write_config("test.work", HANDLER, broker={"endpoints": [dead, LIVE]})
        proc, log = mq.start_worker(config)
        with Publisher(vhost=mq.vhost) as pub:
            mid = pub.publish("test", "test.x", {"n": 1})
        wait_for(lambda: outcome_lines(log, "acked"), 15, "the message acked through the live endpoint")
        assert stop(proc) == 0
    text = log.read_text()
    assert f"cannot connect to {dead}" in text
    assert text.index(f"cannot connect to {dead}") < text.index(f"connected to {LIVE}")
    assert f"message_id={mid}" in outcome_lines(log, "acked")[0]
    assert mq.depth("test.work") == 0


# Reconnect backoff (docs/worker.md): 1 s doubling to 15 s, equal jitter: the k-th wait is at least
# min(15, 2**(k-1)) / 2 s.
def backoff_lower_bound(k: int) -> float:
    return min(15.0, 2.0 ** (k - 1)) / 2


def test_no_reachable_broker_backs_off_feeds_the_watchdog_and_stops_on_sigterm(mq: Broker) -> None:
    watchdog_usec = 2_000_000  # systemd would kill the unit after 2 s without WATCHDOG=1
    listener = NotifyListener()
    try:
        with dead_port() as port:
            config = mq.write_config("test.work", HANDLER, broker={"endpoints": [f"amqp://{HOST}:{port}"]})
            log = config.with_suffix(".log")
            env = mq.env({"NOTIFY_SOCKET": listener.address, "WATCHDOG_USEC": str(watchdog_usec)})
            with open(log, "wb") as fh:  # not mq.start_worker: that waits for consuming, which never comes
                command = [str(BIN / "warren-worker"), "--config", str(config)]
                proc = subprocess.Popen(command, stdout=fh, stderr=subprocess.STDOUT, env=env)
            mq.procs.append(proc)

            def reconnects(received: list[tuple[float, str]]) -> list[float]:
                return [t for t, d in received if d.startswith("STATUS=reconnecting")]

            # Four failed attempts: the wait after the fourth is at least 4 s, which the watchdog must span.
            listener.wait_for(lambda r: len(reconnects(r)) >= 4, 30, "four reconnect attempts")
            assert proc.poll() is None, "no reachable broker is not a reason to exit"
            attempts = reconnects(listener.received)
            for k, (before, after) in enumerate(itertools.pairwise(attempts[:4]), 1):
                assert after - before >= backoff_lower_bound(k), f"wait {k}: {after - before:.2f}s < backoff"
            # In the middle of the fourth wait: SIGTERM ends it at once, with status 0.
            sigterm_at = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=15) == 0
            stopped_after = time.monotonic() - sigterm_at
            fourth_wait_began = reconnects(listener.received)[3]
            assert sigterm_at - fourth_wait_began + stopped_after < backoff_lower_bound(4), (
                "SIGTERM must not wait for the backoff to run out"
            )
        listener.wait_for(lambda r: any(d == "STOPPING=1" for _, d in r), 5, "STOPPING=1")
        pings = [t for t, d in listener.received if d == "WATCHDOG=1" and t < sigterm_at]
        assert len(pings) >= 3
        gaps = [b - a for a, b in itertools.pairwise([*pings, sigterm_at])]
        assert max(gaps) < watchdog_usec / 1e6, f"a {max(gaps):.2f}s watchdog gap would have killed the unit"
        assert not any(d.startswith("READY=1") for _, d in listener.received)
    finally:
        listener.close()


@pytest.mark.parametrize("vhost_state", ["without permissions", "missing"])
def test_refused_vhost_exits_77(mq: Broker, vhost_state: str) -> None:
    vhost = f"warren-test-refused-{uuid.uuid4().hex[:10]}"
    if vhost_state == "without permissions":
        rabbitmqctl("add_vhost", vhost)
    try:
        config = mq.write_config("test.work", HANDLER, broker={"vhost": vhost})
        out = mq.run("warren-worker", "--config", str(config))
    finally:
        if vhost_state == "without permissions":
            rabbitmqctl("delete_vhost", vhost)
    assert out.returncode == 77, out.stdout + out.stderr
    assert f"on vhost '{vhost}'" in out.stdout


def test_refused_queue_exits_77(mq: Broker) -> None:
    rabbitmqctl("set_permissions", "-p", mq.vhost, "guest", ".*", ".*", "^$")  # may read no queue
    out = mq.run("warren-worker", "--config", str(mq.write_config("test.work", HANDLER)))
    assert out.returncode == 77, out.stdout + out.stderr
    assert "refused access to queue 'test.work'" in out.stdout
