"""sd_notify: socket kinds, the watchdog's period, failures that must not stop the worker."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import pytest

import warren.notify
from warren.notify import STATUS_EVERY_SECONDS, Notifier, WorkerStatus


def test_notify_abstract_socket_and_watchdog() -> None:
    name = f"warren-unit-{uuid.uuid4().hex}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind("\0" + name)
    server.settimeout(2)
    n = Notifier({"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "4000000"})
    assert n.enabled and n.watchdog_interval == 2.0
    assert n.ready("ok")
    assert server.recv(100) == b"READY=1\nSTATUS=ok"
    assert n.status("x=1") and server.recv(100) == b"STATUS=x=1"
    assert n.watchdog() and server.recv(100) == b"WATCHDOG=1"
    assert n.stopping() and server.recv(100) == b"STOPPING=1"
    n.close()
    server.close()


def test_notify_path_socket_and_disabled(tmp_path: Path) -> None:
    path = str(tmp_path / "notify")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    assert Notifier({"NOTIFY_SOCKET": path}).ready() and server.recv(100) == b"READY=1"
    server.close()
    off = Notifier({})
    assert not off.enabled and off.ready() is False and off.watchdog_interval is None
    # Watchdog meant for another process (WATCHDOG_PID) is not ours to feed.
    assert (
        Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"}).watchdog_interval
        is None
    )


def test_notify_failure_is_not_fatal(tmp_path: Path) -> None:
    assert Notifier({"NOTIFY_SOCKET": str(tmp_path / "absent")}).ready() is False


def test_status_and_watchdog_are_due_by_the_clock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(tmp_path / "notify")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.settimeout(2)
    now = [1000.0]
    monkeypatch.setattr(warren.notify.time, "monotonic", lambda: now[0])
    n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "4000000"})  # ping every 2 s
    assert n.status_due()
    n.status("x")
    assert server.recv(100) == b"STATUS=x" and not n.status_due()
    now[0] += STATUS_EVERY_SECONDS
    assert n.status_due()
    n.watchdog_if_due()
    assert server.recv(100) == b"WATCHDOG=1"
    now[0] += 1.9
    n.watchdog_if_due()  # not yet: nothing sent
    now[0] += 0.1
    n.watchdog_if_due()
    assert server.recv(100) == b"WATCHDOG=1"
    server.setblocking(False)
    with pytest.raises(BlockingIOError):
        server.recv(100)  # exactly two pings
    server.close()
    assert not Notifier({}).status_due()


def test_worker_status_sends_ready_once_then_status_lines(tmp_path: Path) -> None:
    path = str(tmp_path / "notify")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.settimeout(2)
    counts = {"processed": 1, "failed": 0, "retried": 2, "dead_lettered": 0}
    status = WorkerStatus(Notifier({"NOTIFY_SOCKET": path}), "jobs", lambda: counts, lambda: 3)
    line = b"jobs: processed=1 failed=0 retried=2 dead_lettered=0 in_flight=3"
    status.consuming()
    assert server.recv(200) == b"READY=1\nSTATUS=" + line
    assert server.recv(200) == b"STATUS=" + line
    status.consuming()  # consuming again after a reconnect: no second READY=1
    assert server.recv(200) == b"STATUS=" + line
    status.report("reconnecting in 2s")
    assert server.recv(200) == b"STATUS=reconnecting in 2s; " + line
    server.close()
