"""A loopback TCP proxy in front of the test broker that can cut the network and heal it, for the failover
tests: the worker connects through it, the test publishes straight to the broker.

A cut stops forwarding in both directions but keeps every socket open, as a dropped link does: bytes sent
meanwhile wait in the kernel's buffers, and neither side hears of the other closing its end. Once healed,
what waited flows on, and an end closed during the cut closes the other (as the RST a peer's retransmission
meets). A connection made during the cut is accepted by the kernel but reaches the broker only at the heal.

Only 127.0.0.1; a bounded number of threads (two per connection, plus the acceptor), all daemons.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from types import TracebackType

from conftest import HOST, PORT


class NetCut:
    def __init__(self, upstream: tuple[str, int] = (HOST, PORT), max_connections: int = 32) -> None:
        self._upstream = upstream
        self._max = max_connections
        self._open = threading.Event()  # set: forwarding; clear: cut
        self._open.set()
        self._closed = False
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []  # (client end, broker end)
        self._orphans: set[socket.socket] = set()  # broker ends whose client end was dropped
        self._listener = socket.create_server((HOST, 0))
        self.port: int = self._listener.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._accept, name="netcut-accept", daemon=True).start()

    @property
    def url(self) -> str:
        return f"amqp://{HOST}:{self.port}"

    def cut(self, *, drop_clients: bool = False) -> None:
        """Stop forwarding. `drop_clients`: also reset the client end of every connection at once, while its
        broker end stays open and never hears of it (half-dead: the broker learns only from its heartbeat
        timeout), as when a client's own TCP timeouts or a local error end its side of a dropped link: the
        kernel behind a loopback proxy acknowledges everything, so no client timeout would ever fire here."""
        self._open.clear()
        if drop_clients:
            with self._lock:
                for client, broker in self._pairs:
                    self._orphans.add(broker)
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    _close(client)

    def heal(self) -> None:
        self._open.set()

    def __enter__(self) -> NetCut:
        return self

    def __exit__(self, *_exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._closed = True
        self._open.set()
        self._listener.close()
        with self._lock:
            for pair in self._pairs:
                for sock in pair:
                    _close(sock)

    def _accept(self) -> None:
        while not self._closed and self.accepted < self._max:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            self._open.wait()  # during a cut the broker sees nothing of a new connection
            try:
                broker = socket.create_connection(self._upstream, timeout=5)
            except OSError:
                _close(client)
                continue
            broker.settimeout(None)
            with self._lock:
                self._pairs.append((client, broker))
            for src, dst in ((client, broker), (broker, client)):
                threading.Thread(target=self._pump, args=(src, dst), name="netcut-pump", daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        """Copy src to dst, holding everything (data and the end of the stream) while the link is cut."""
        while True:
            self._open.wait()
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            self._open.wait()  # read just before a cut: held until the heal
            if self._closed or not data:
                break
            try:
                dst.sendall(data)
            except OSError:
                break
        for sock in (src, dst):
            if sock not in self._orphans:  # a half-dead broker end is left for the broker to time out
                _close(sock)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
