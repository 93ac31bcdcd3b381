"""Fault injection for the integration tests: stop the host broker's app, a loopback port nothing listens on,
a sd_notify socket the test reads, and counting what was handled and acked.

Everything here talks only to 127.0.0.1 (or an abstract Unix socket), and every wait has a deadline.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from conftest import HOST, _listening, rabbitmqctl, wait_for


@contextmanager
def broker_app_stopped() -> Iterator[None]:
    """Stop the RabbitMQ application (the node stays up; listeners close, connections are forced shut), and
    start it again on the way out, whatever happened in between, waiting until 5672 accepts connections."""
    try:
        rabbitmqctl("stop_app")
        wait_for(lambda: not _listening(), 30, "the AMQP listener to close")
        yield
    finally:
        rabbitmqctl("start_app")
        rabbitmqctl("await_startup", "--timeout", "120")
        wait_for(_listening, 60, "the AMQP listener to accept connections again")


@contextmanager
def memory_alarm() -> Iterator[None]:
    """Raise the broker's memory alarm (a high watermark of 0: every publishing connection is blocked), and
    restore the watermark it had on the way out, whatever happened in between."""
    before = rabbitmqctl("eval", "vm_memory_monitor:get_vm_memory_high_watermark().").strip()
    float(before)  # a relative watermark, e.g. 0.4; anything else would not restore as one
    try:
        rabbitmqctl("set_vm_memory_high_watermark", "0")
        yield
    finally:
        rabbitmqctl("set_vm_memory_high_watermark", before)


@contextmanager
def dead_port() -> Iterator[int]:
    """A loopback TCP port that refuses connections: bound (so nothing else takes it) but never listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        yield sock.getsockname()[1]


class NotifyListener:
    """An abstract AF_UNIX datagram socket to give a worker as NOTIFY_SOCKET; keeps what arrives, and when."""

    def __init__(self) -> None:
        self.address = f"@warren-test-{uuid.uuid4().hex}"
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind("\0" + self.address[1:])
        self._sock.settimeout(0.1)
        self.received: list[tuple[float, str]] = []  # (time.monotonic() at arrival, datagram)

    def _receive(self) -> None:
        try:
            while True:
                self.received.append((time.monotonic(), self._sock.recv(4096).decode()))
                self._sock.settimeout(0)  # take whatever else is queued without waiting
        except (TimeoutError, BlockingIOError):
            pass
        finally:
            self._sock.settimeout(0.1)

    def wait_for(self, predicate: Any, timeout: float, what: str) -> Any:
        """Read datagrams until predicate(self.received) is true (bounded)."""

        def check() -> Any:
            self._receive()
            return predicate(self.received)

        return wait_for(check, timeout, what, interval=0)

    def close(self) -> None:
        self._sock.close()


def acked_ids(log: Path) -> Counter[str]:
    """How many `outcome=acked` lines the worker's log has per message_id (docs/worker.md, "Logs")."""
    counts: Counter[str] = Counter()
    for line in log.read_text().splitlines():
        if "outcome=acked" in line:
            counts[line.split("message_id=", 1)[1].split()[0]] += 1
    return counts


def handled_ids(records: list[dict[str, Any]]) -> Counter[str]:
    """How many times a handler finished each message_id (the "end" records)."""
    return Counter(r["message_id"] for r in records if r["event"] == "end")


def duplicates(counts: Counter[str]) -> int:
    """Extra runs beyond the first, over all ids."""
    return sum(n - 1 for n in counts.values() if n > 1)


def report(capsys: Any, text: str) -> None:
    """Show a figure on the terminal even under `pytest -q` (duplicates are allowed, but must be visible)."""
    with capsys.disabled():
        print(f"\n  {text}")
