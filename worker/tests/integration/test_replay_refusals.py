"""`warren-publish --replay-dlq` refused by the broker: exit 77 with a line that says what was refused, no
traceback, and the dead letter still in its queue. (76, a refused TLS certificate: tests/unit/test_tls.py.)"""

from __future__ import annotations

import subprocess

import pika
import pytest
from conftest import Broker, rabbitmqctl

pytestmark = pytest.mark.integration

DLQ = "test.work.dlq"


def dead_letter(mq: Broker) -> None:
    """One dead letter with the origin headers the worker writes."""
    ch = mq.channel()
    headers = {"x-warren-exchange": "test", "x-warren-routing-key": "test.replay"}
    ch.basic_publish(
        "", DLQ, b"{}", pika.BasicProperties(delivery_mode=2, message_id="dead-1", headers=headers)
    )
    ch.connection.close()


def replay(mq: Broker, *args: str) -> subprocess.CompletedProcess[str]:
    return mq.run("warren-publish", "--replay-dlq", DLQ, *args)


def test_a_wrong_password_exits_77(mq: Broker) -> None:
    dead_letter(mq)
    (mq.tmp / "wrong").write_text("not-the-password\n")
    out = replay(mq, "--vhost", mq.vhost, "--password-file", str(mq.tmp / "wrong"))
    assert out.returncode == 77, out.stderr
    assert out.stderr.startswith("warren-publish: access refused: ") and "ACCESS_REFUSED" in out.stderr
    assert mq.depth(DLQ) == 1


def test_a_missing_vhost_exits_77(mq: Broker) -> None:
    out = replay(mq, "--vhost", f"{mq.vhost}-missing")
    assert out.returncode == 77, out.stderr
    assert "access refused: " in out.stderr and "NOT_ALLOWED" in out.stderr


@pytest.mark.parametrize(
    ("write", "read", "refused"),
    [(".*", "^$", f"access to queue '{DLQ}'"), ("^$", ".*", "access to exchange 'test'")],
    ids=["the DLQ unreadable", "the origin unwritable"],
)
def test_a_refused_queue_or_exchange_exits_77_and_leaves_the_dead_letter(
    mq: Broker, write: str, read: str, refused: str
) -> None:
    dead_letter(mq)
    rabbitmqctl("set_permissions", "-p", mq.vhost, "guest", ".*", write, read)
    out = replay(mq, "--vhost", mq.vhost)
    assert out.returncode == 77, out.stderr
    assert "Traceback" not in out.stderr
    assert out.stderr.startswith(f"warren-publish: access refused: replaying '{DLQ}': 403 ")
    assert refused in out.stderr and "(0 replayed before)" in out.stderr
    rabbitmqctl("set_permissions", "-p", mq.vhost, "guest", ".*", ".*", ".*")
    assert mq.depth(DLQ) == 1  # taken, not acked: back in the DLQ
