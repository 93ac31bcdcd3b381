"""What the worker writes at the default level (INFO): failures line by line, successes as a summary."""

from __future__ import annotations

import socket
import subprocess

import pytest
from conftest import BIN, HOST, Broker, wait_for
from test_consume import stop

from warren.outgoing import OutgoingMessage
from warren.publisher import Publisher

pytestmark = pytest.mark.integration


def test_at_info_successes_are_counted_and_failures_logged_one_by_one(mq: Broker) -> None:
    config = mq.write_config(
        "order.events",
        {"order.*": "warren.handlers:order_event"},
        logging={"level": "INFO", "tutorial_rate": 5},
    )
    proc, log = mq.start_worker(config)
    total, bad = 200, 3
    with Publisher(vhost=mq.vhost) as pub:
        result = pub.publish_many(
            OutgoingMessage.json("events", "order.created", {"order_id": i, "event": "order.created"})
            for i in range(total)
        )
    assert result.confirmed == total
    for i in range(bad):
        mq.publish_raw("events", "order.created", b"not json", message_id=f"bad-{i}")
    wait_for(lambda: mq.depth("order.events") == 0 and mq.depth("order.events.dlq") == bad, 30, "drained")
    wait_for(lambda: log.read_text().count("outcome=dead-lettered") == bad, 10, "dead-letter lines")
    assert stop(proc) == 0
    lines = log.read_text().splitlines()
    assert not [x for x in lines if "outcome=acked" in x]  # successes: DEBUG, not written at INFO
    dead = [x for x in lines if "outcome=dead-lettered" in x]
    assert {x.split("message_id=")[1].split()[0] for x in dead} == {f"bad-{i}" for i in range(bad)}
    assert all(x.startswith("ERROR warren.outcome: message dead-lettered ") for x in dead)
    # The tutorial lines: every message would write two; at 5 messages a second, far fewer are written.
    received = [x for x in lines if "Received event" in x]
    assert 5 <= len(received) < total // 2
    (final,) = [x for x in lines if "warren.summary: final summary" in x]
    assert f" total_acked={total} " in final and f" total_dead_lettered={bad}" in final
    skipped = int(final.split("tutorial_lines_skipped=")[1].split()[0])
    assert skipped + len(received) == total  # the malformed ones are dead-lettered before any handler runs


def test_an_unreachable_broker_gives_one_warning_per_attempt_and_no_pika_errors(mq: Broker) -> None:
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind((HOST, 0))
        port = probe.getsockname()[1]
    config = mq.write_config(
        "order.events", {"order.*": "warren.handlers:order_event"}, logging={"level": "INFO"}
    )
    text = config.read_text().replace(f'"amqp://{HOST}:5672"', f'"amqp://{HOST}:{port}"')
    config.write_text(text)
    log = config.with_suffix(".log")
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [str(BIN / "warren-worker"), "--config", str(config)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=mq.env(),
        )
    mq.procs.append(proc)
    wait_for(lambda: log.read_text().count("next attempt in") >= 2, 30, "two failed attempts")
    assert stop(proc) == 0
    lines = log.read_text().splitlines()
    attempts = [x for x in lines if "next attempt in" in x]
    assert attempts[0].startswith(
        f"WARNING warren.worker: cannot connect to amqp://{HOST}:{port}: "
        "TCP connect failed: Connection refused; next attempt in "
    )
    assert attempts[0].endswith(f"s to amqp://{HOST}:{port} (1 consecutive failures)")
    assert not [x for x in lines if "pika" in x], lines
