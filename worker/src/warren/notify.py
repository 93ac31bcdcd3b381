"""sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET, a no-op when it is unset."""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

log = logging.getLogger("warren.notify")
# The broker-alarm lines are the worker's: operators filter the journal on its logger's name.
worker_log = logging.getLogger("warren.worker")

STATUS_EVERY_SECONDS = 5.0


class Notifier:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        addr = env.get("NOTIFY_SOCKET", "")
        # "@name" is a Linux abstract-namespace socket: the kernel wants a leading NUL instead.
        self._address = "\0" + addr[1:] if addr.startswith("@") else addr
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        watchdog = usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid()))
        # Ping at half the period, as sd_watchdog_enabled(3) recommends.
        self.watchdog_interval: float | None = int(usec) / 2e6 if watchdog else None
        self._sock: socket.socket | None = None
        self._next_status = 0.0
        self._next_watchdog = 0.0

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def send(self, state: str) -> bool:
        if not self._address:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(state.encode("utf-8"), self._address)
        except OSError as exc:
            # Supervision is best effort: never let a notification failure stop message processing.
            log.warning("sd_notify failed: %s", exc)
            return False
        return True

    def ready(self, status: str = "") -> bool:
        return self.send("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def status(self, status: str) -> bool:
        self._next_status = time.monotonic() + STATUS_EVERY_SECONDS
        return self.send(f"STATUS={status}")

    def status_due(self) -> bool:
        """Whether a STATUS= is due: enabled, and the last one is STATUS_EVERY_SECONDS old."""
        return self.enabled and time.monotonic() >= self._next_status

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def watchdog_if_due(self) -> None:
        """WATCHDOG=1 when systemd's watchdog is on for us and half its period passed since the last one."""
        interval = self.watchdog_interval
        if interval is not None and time.monotonic() >= self._next_watchdog:
            self._next_watchdog = time.monotonic() + interval
            self.watchdog()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


@dataclass
class WorkerStatus:
    """The worker's line in `systemctl status`: READY=1 with the first one, then a STATUS= when it changes
    state and every STATUS_EVERY_SECONDS."""

    notifier: Notifier
    queue: str
    counts: Callable[[], dict[str, int]]
    in_flight: Callable[[], int]
    ready_sent: bool = False

    def text(self) -> str:
        return status_text(self.queue, self.counts(), self.in_flight())

    def consuming(self) -> None:
        """Consuming (again): READY=1 the first time, then the status."""
        if not self.ready_sent:
            self.ready_sent = self.notifier.ready(self.text())
        self.report()

    def report(self, prefix: str = "") -> None:
        if self.notifier.enabled:
            self.notifier.status(f"{prefix}; {self.text()}" if prefix else self.text())

    def blocked(self, reason: str, url: str) -> None:
        # The broker reads nothing more from this connection (acks included) until the alarm clears; a
        # reconnect would not help, the alarm is the broker's (or the cluster's).
        worker_log.warning(
            "%s (%s): retries and dead letters wait for its confirm, and acks with them, until it unblocks",
            reason,
            url,
        )
        self.report(reason)

    def unblocked(self, url: str) -> None:
        worker_log.info("broker unblocked publishing (%s)", url)
        self.report()

    def report_if_due(self) -> None:
        if self.notifier.status_due():
            self.report()


def status_text(queue: str, counts: dict[str, int], in_flight: int) -> str:
    """The STATUS= systemctl shows."""
    return (
        f"{queue}: processed={counts['processed']} failed={counts['failed']} retried={counts['retried']} "
        f"dead_lettered={counts['dead_lettered']} in_flight={in_flight}"
    )
