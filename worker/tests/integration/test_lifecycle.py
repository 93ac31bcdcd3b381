"""Process-level behaviour: SIGTERM drain, broker connection loss, credentials, sd_notify, metrics."""

from __future__ import annotations

import signal
import socket
import time
import urllib.request
import uuid

import pytest
from conftest import Broker, rabbitmqctl, wait_for
from test_consume import outcome_lines, stop

from warren.outgoing import OutgoingMessage
from warren.publisher import Publisher

pytestmark = pytest.mark.integration


def test_sigterm_finishes_and_acks_in_flight_work(mq: Broker) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock_name = f"@warren-test-{uuid.uuid4().hex}"
    sock.bind("\0" + sock_name[1:])
    sock.settimeout(0.2)
    config = mq.write_config(
        "test.work", {"test.#": "testhandlers:record"}, consumer={"prefetch": 4, "concurrency": 4}
    )
    proc, log = mq.start_worker(config, env={"NOTIFY_SOCKET": sock_name})
    with Publisher(vhost=mq.vhost) as pub:
        ids = [pub.publish("test", "test.slow", {"i": i, "sleep": 2}) for i in range(4)]
    wait_for(lambda: len(mq.records()) == 4, 10, "four handlers running")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    assert sorted(r["message_id"] for r in mq.records() if r["event"] == "end") == sorted(ids)
    assert len(outcome_lines(log, "acked")) == 4
    assert mq.depth("test.work") == 0  # anything unacked would be back in the queue now
    datagrams = []
    for _ in range(200):
        try:
            datagrams.append(sock.recv(4096).decode())
        except TimeoutError:
            break
    sock.close()
    assert datagrams[0].startswith("READY=1\nSTATUS=test.work: processed=0")
    assert "STOPPING=1" in datagrams
    assert datagrams.index("STOPPING=1") > 0


def test_reconnects_after_connections_are_killed_and_loses_nothing(mq: Broker) -> None:
    config = mq.write_config(
        "test.work", {"test.#": "testhandlers:record"}, consumer={"prefetch": 20, "concurrency": 8}
    )
    proc, log = mq.start_worker(config)
    total = 300
    with Publisher(vhost=mq.vhost) as pub:
        result = pub.publish_many(
            OutgoingMessage.json("test", "test.x", {"i": i, "sleep": 0.1}) for i in range(total)
        )
    assert result.confirmed == total
    wait_for(lambda: len([r for r in mq.records() if r["event"] == "end"]) >= 30, 20, "some progress")
    rabbitmqctl("close_all_connections", "--vhost", mq.vhost, "warren test: simulated node failure")
    wait_for(lambda: log.read_text().count("consuming test.work") >= 2, 30, "worker to reconnect")
    wait_for(
        lambda: len({r["message_id"] for r in mq.records() if r["event"] == "end"}) == total,
        60,
        "every message handled",
    )
    wait_for(lambda: mq.depth("test.work") == 0, 10, "queue empty")
    assert stop(proc) == 0
    text = log.read_text()
    assert "connection to amqp://127.0.0.1:5672 lost: closed by the broker: 320 CONNECTION_FORCED" in text
    assert "; next attempt in " in text
    assert "unacknowledged messages will be redelivered by the broker" in text
    ids = {r["message_id"] for r in mq.records() if r["event"] == "end"}
    assert len(ids) == total
    # At least once: messages in flight at the cut may run twice, but each is acked exactly once.
    acked = {line.split("message_id=")[1].split()[0] for line in outcome_lines(log, "acked")}
    assert acked == ids
    assert mq.depth("test.work") == 0 and mq.depth("test.work.dlq") == 0


def test_bad_credentials_exit_77(mq: Broker) -> None:
    config = mq.write_config("test.work", {"test.#": "testhandlers:record"})
    (mq.tmp / "password").write_text("wrong-password\n")
    proc = mq.run("warren-worker", "--config", str(config))
    assert proc.returncode == 77, proc.stdout + proc.stderr
    assert "refused user 'guest'" in proc.stdout


@pytest.mark.parametrize("listen_from", ["profile", "command line"])
def test_metrics_endpoint_counts_outcomes(mq: Broker, listen_from: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    listen = f"127.0.0.1:{port}"
    if listen_from == "profile":
        config = mq.write_config("test.work", {"test.ok": "testhandlers:record"}, metrics={"listen": listen})
        proc, log = mq.start_worker(config)
    else:  # how the role gives each unit instance its own port
        config = mq.write_config("test.work", {"test.ok": "testhandlers:record"})
        proc, log = mq.start_worker(config, args=["--metrics-listen", listen])
    with Publisher(vhost=mq.vhost) as pub:
        pub.publish("test", "test.ok", {"a": 1})
        pub.publish("test", "test.ok", {"a": 2})
    mq.publish_raw("test", "test.ok", b"nope")
    wait_for(
        lambda: len(outcome_lines(log, "acked")) == 2 and outcome_lines(log, "dead-lettered"), 15, "outcomes"
    )
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert 'warren_messages_total{outcome="acked",queue="test.work"} 2.0' in body
    assert 'warren_messages_total{outcome="dead-lettered",queue="test.work"} 1.0' in body
    assert 'warren_handler_seconds_count{queue="test.work"} 2.0' in body
    assert stop(proc) == 0


def test_replay_dead_letters_back_to_origin(mq: Broker) -> None:
    proc, log = mq.start_worker(mq.write_config("test.work", {"test.#": "testhandlers:fail"}))
    with Publisher(vhost=mq.vhost) as pub:
        mid = pub.publish("test", "test.replay", {"succeed_on": 99})
    wait_for(lambda: outcome_lines(log, "dead-lettered"), 20, "dead-letter")
    assert stop(proc) == 0
    assert mq.depth("test.work.dlq") == 1
    # The "bug" is fixed: the next deployment's handler accepts the message.
    proc2, log2 = mq.start_worker(mq.write_config("test.work", {"test.#": "testhandlers:record"}))
    out = mq.run("warren-publish", "--vhost", mq.vhost, "--replay-dlq", "test.work.dlq")
    assert out.returncode == 0, out.stderr
    assert "replayed 1 from test.work.dlq, 0 left" in out.stdout
    wait_for(lambda: outcome_lines(log2, "acked"), 15, "replayed message handled")
    assert stop(proc2) == 0
    (line,) = outcome_lines(log2, "acked")
    assert f"message_id={mid}" in line and "attempt=1" in line and "routing_key=test.replay" in line
    assert mq.depth("test.work.dlq") == 0 and mq.depth("test.work") == 0


def test_drain_timeout_returns_unfinished_work_to_the_queue(mq: Broker) -> None:
    config = mq.write_config(
        "test.work",
        {"test.#": "testhandlers:record"},
        consumer={"prefetch": 2, "concurrency": 2, "drain_timeout": 1},
    )
    proc, log = mq.start_worker(config)
    with Publisher(vhost=mq.vhost) as pub:
        pub.publish("test", "test.stuck", {"sleep": 30})
    wait_for(lambda: mq.records(), 10, "handler to start")
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    assert time.monotonic() - started < 10, "a stuck handler must not block exit past the drain timeout"
    assert "drain timeout (1s): 1 messages unfinished; the broker will redeliver them" in log.read_text()
    assert mq.depth("test.work") == 1


def test_unroutable_retry_keeps_the_message(mq: Broker) -> None:
    ch = mq.channel()
    ch.queue_unbind("test.work.retry", "warren.retry", routing_key="test.work")
    ch.connection.close()
    proc, log = mq.start_worker(mq.write_config("test.work", {"test.#": "testhandlers:fail"}))
    with Publisher(vhost=mq.vhost) as pub:
        pub.publish("test", "test.fail", {"n": 1})
    wait_for(lambda: "is unroutable" in log.read_text(), 15, "unroutable republish reported")
    assert "is test.work.retry declared and bound?" in log.read_text()
    assert not outcome_lines(log, "retried") and not outcome_lines(log, "acked")
    assert stop(proc) == 0
    assert mq.depth("test.work") == 1  # held unacked, so it went back to the queue: nothing lost
    assert mq.depth("test.work.dlq") == 0


def test_broker_cancel_then_queue_back_resumes(mq: Broker) -> None:
    proc, log = mq.start_worker(mq.write_config("test.work", {"test.#": "testhandlers:record"}))
    ch = mq.channel()
    ch.queue_delete("test.work")
    wait_for(lambda: "broker cancelled the consumer" in log.read_text(), 15, "cancel noticed")
    wait_for(lambda: "NOT_FOUND" in log.read_text(), 15, "consume on a missing queue refused")
    ch.queue_declare(
        "test.work",
        durable=True,
        arguments={"x-dead-letter-exchange": "warren.dlx", "x-dead-letter-routing-key": "test.work"},
    )
    ch.queue_bind("test.work", "test", routing_key="test.#")
    ch.connection.close()
    wait_for(lambda: log.read_text().count("consuming test.work") >= 2, 60, "consuming again")
    assert proc.poll() is None
    with Publisher(vhost=mq.vhost) as pub:
        pub.publish("test", "test.back", {"n": 1})
    wait_for(lambda: outcome_lines(log, "acked"), 15, "message after recovery acked")
    assert stop(proc) == 0
