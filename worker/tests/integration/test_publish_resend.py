"""warren-publish sends again what the broker refuses (basic.nack): a queue with `x-overflow: reject-publish`
makes the broker nack for real; drained between rounds, the resends are confirmed; never drained, the bound is
reached and the refused message_ids are named."""

from __future__ import annotations

import json
import subprocess
import threading

import pytest
from conftest import BIN, Broker, rabbitmqctl

pytestmark = pytest.mark.integration

QUEUE = "resend.bounded"


def declare_bounded_queue(mq: Broker, max_length: int) -> None:
    ch = mq.channel()
    ch.queue_declare(
        QUEUE, durable=True, arguments={"x-max-length": max_length, "x-overflow": "reject-publish"}
    )
    ch.connection.close()


def envelopes(ids: list[str]) -> str:
    return "".join(json.dumps({"routing_key": QUEUE, "body": {"n": i}, "message_id": i}) + "\n" for i in ids)


def channel_numbers(mq: Broker) -> list[str]:
    """The numbers of the channels open in the test's vhost (warren-publish's only)."""
    rows = [line.split("\t") for line in rabbitmqctl("list_channels", "vhost", "number").splitlines()]
    return [number for vhost, number in rows if vhost == mq.vhost]


def publish_draining(
    mq: Broker, ids: list[str], *args: str
) -> tuple[int, list[str], str, set[str], list[list[str]]]:
    """Run warren-publish on `ids`; each time it says it will send refused messages again, drain the queue (it
    waits a second or more first) and note its open channels. Returns its status, its stderr lines, its
    stdout, the ids drained and the channels seen at each wait."""
    proc = subprocess.Popen(
        [str(BIN / "warren-publish"), "--vhost", mq.vhost, "--file", "-", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=mq.env(),
    )
    watchdog = threading.Timer(60, proc.kill)  # bounded, whatever happens
    watchdog.start()
    drained: set[str] = set()
    lines: list[str] = []
    channels: list[list[str]] = []
    try:
        assert proc.stdin is not None and proc.stderr is not None and proc.stdout is not None
        proc.stdin.write(envelopes(ids))
        proc.stdin.close()
        for line in proc.stderr:
            lines.append(line.rstrip("\n"))
            if "sending them again" in line:  # drain at once (rabbitmqctl takes a second or so)
                drained |= {props.message_id for props, _ in mq.get_all(QUEUE)}
                channels.append(channel_numbers(mq))
        stdout = proc.stdout.read()
        status = proc.wait(timeout=10)
    finally:
        watchdog.cancel()
    return status, lines, stdout, drained | {props.message_id for props, _ in mq.get_all(QUEUE)}, channels


def test_refused_messages_are_sent_again_until_confirmed(mq: Broker) -> None:
    declare_bounded_queue(mq, 2)
    ids = [f"r-{n}" for n in range(5)]
    status, lines, stdout, received, channels = publish_draining(mq, ids)
    assert status == 0, lines
    # Round 1 stores 2, refuses 3; after a drain, round 2 stores 2 of those, refuses 1; round 3 stores it.
    assert [ln for ln in lines if "sending them again" in ln] == [
        "warren-publish: broker refused 3 messages (nack); sending them again in 1s on a new channel",
        "warren-publish: broker refused 1 messages (nack); sending them again in 2s on a new channel",
    ]
    assert (
        "warren-publish: 5 sent, 5 confirmed, 4 resent, 0 failed, 0 unroutable, 0 invalid input lines"
        in stdout
    )
    assert received == set(ids)
    # Each round after a nack goes on a new channel: a channel may refuse whatever it is sent after one. By
    # the second wait the first channel is gone (the second, or already the third, is open).
    assert len(channels) == 2 and channels[1] and "1" not in channels[1], channels


def test_messages_refused_every_time_fail_at_the_bound_and_are_named(mq: Broker) -> None:
    declare_bounded_queue(mq, 0)  # refuses everything
    status, lines, _, received, _ = publish_draining(mq, ["x-1", "x-2"], "--max-attempts", "2")
    assert status == 4, lines
    assert "warren-publish: broker refused (nack) message_id=x-1 2 times; not sent again" in lines
    assert "warren-publish: broker refused (nack) message_id=x-2 2 times; not sent again" in lines
    assert (
        "warren-publish: 2 sent, 0 confirmed, 2 resent, 2 failed, 0 unroutable, 0 invalid input lines"
        in lines
    )
    assert received == set()
