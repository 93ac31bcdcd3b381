"""Connecting to the broker, for both programs: endpoint rotation and reconnect backoff, pika connection
parameters, telling a refusal (credentials, vhost, permissions) from any other failure, and saying why a
connection failed in one line."""

from __future__ import annotations

import random
import socket
import ssl
from typing import Any
from urllib.parse import urlsplit

import pika
import pika.exceptions as pex
from pika.adapters.utils import connection_workflow as cw

from warren.retry import Backoff, error_line
from warren.tls import client_context

# Capped at 15 s: once a broker is back, the next attempt comes within 15 s however long it was away
# (consumption resumes within 30 s of a broker's return, the promise of docs/worker.md).
RECONNECT_BACKOFF = Backoff(initial=1.0, multiplier=2.0, maximum=15.0)

# AMQP heartbeat timeout both programs ask for. The broker drops a connection it has heard nothing from for
# three times this (measured on RabbitMQ 3.10), and only then requeues the deliveries it holds for it: after a
# network cut, a worker's half-dead old connection keeps its prefetched messages that long.
DEFAULT_HEARTBEAT = 10
# With heartbeats disabled, how long a silent or unacknowledging peer may go unnoticed by the TCP options.
NO_HEARTBEAT_DEAD_PEER_SECONDS = 30

# Reply codes of a refusal: ACCESS_REFUSED (a queue or exchange), NOT_ALLOWED (the vhost).
PERMISSION_CODES = (403, 530)
_AUTH_ERRORS = (pex.AuthenticationError, pex.ProbableAuthenticationError, pex.ProbableAccessDeniedError)


class Endpoints:
    """Tried in configured order, then round-robin; backoff grows with consecutive failures."""

    def __init__(
        self, urls: tuple[str, ...], backoff: Backoff = RECONNECT_BACKOFF, rng: random.Random | None = None
    ) -> None:
        if not urls:
            raise ValueError("at least one endpoint is required")
        self.urls = urls
        self.backoff = backoff
        self._rng = rng
        self._next = 0
        self.failures = 0

    def next_url(self) -> str:
        url = self.urls[self._next]
        self._next = (self._next + 1) % len(self.urls)
        return url

    def failed(self) -> float:
        """Record a failed or lost connection; returns the delay before the next attempt."""
        self.failures += 1
        return self.backoff.delay(self.failures, self._rng)

    def succeeded(self) -> None:
        self.failures = 0

    def retry_line(self, reason: str, delay: float) -> str:
        """The one line for a failed or lost connection (`failed` counted it): why, then when and where
        the next attempt goes."""
        upcoming = describe(self.urls[self._next])
        return f"{reason}; next attempt in {delay:.1f}s to {upcoming} ({self.failures} consecutive failures)"


def connection_parameters(
    url: str,
    *,
    vhost: str,
    username: str,
    password: str,
    timeout: float,
    name: str,
    heartbeat: int = DEFAULT_HEARTBEAT,
    tls_context: ssl.SSLContext | None = None,
) -> pika.ConnectionParameters:
    """One connection attempt to `url` (amqp:// or amqps://host[:port]); ValueError for any other URL.

    `timeout` bounds the TCP connect, twice it the AMQP handshake; `heartbeat` is the AMQP heartbeat timeout
    in seconds (0 disables it), which also sets the socket's TCP timeouts (`tcp_options`).
    `name` is the connection name the management UI shows. `tls_context` verifies an amqps:// broker
    (warren.tls); None trusts the system's CAs.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
        raise ValueError(f"not an amqp:// URL: {url!r}")
    tls = parts.scheme == "amqps"
    params = pika.ConnectionParameters(
        host=parts.hostname,
        port=parts.port or (5671 if tls else 5672),
        virtual_host=vhost,
        # Kept after connecting: the worker reconnects with the same parameters.
        credentials=pika.PlainCredentials(username, password, erase_on_connect=False),
        heartbeat=heartbeat,
        tcp_options=tcp_options(heartbeat),
        socket_timeout=timeout,
        stack_timeout=timeout * 2,
        blocked_connection_timeout=None,
        connection_attempts=1,
        client_properties={"connection_name": name},
    )
    if tls:
        params.ssl_options = pika.SSLOptions(tls_context or client_context(None), parts.hostname)
    return params


def tcp_options(heartbeat: int) -> dict[str, int]:
    """Socket options that make the kernel end a connection whose peer went silent, in about `heartbeat`
    seconds (NO_HEARTBEAT_DEAD_PEER_SECONDS when heartbeats are off).

    TCP_USER_TIMEOUT: data sent (a heartbeat goes out every heartbeat/2 s) and not acknowledged for that long
    aborts the connection, where Linux would otherwise retransmit for some 15 minutes. Keepalive probes cover
    a connection with nothing to send (heartbeats off). pika applies both to the socket before connecting.
    """
    span = heartbeat or NO_HEARTBEAT_DEAD_PEER_SECONDS
    return {
        "TCP_USER_TIMEOUT": span * 1000,
        "TCP_KEEPIDLE": span,
        "TCP_KEEPINTVL": max(1, span // 3),
        "TCP_KEEPCNT": 3,
    }


def blocked_reason(method: Any) -> str:
    """The line for the broker's Connection.Blocked (a memory or disk alarm): "broker blocked publishing: low
    on memory". While blocked the broker reads nothing more from the connection: no publish is confirmed."""
    return f"broker blocked publishing: {getattr(method, 'reason', '') or 'no reason given'}"


def refuses_access(err: BaseException) -> bool:
    """Whether a connection failed because the broker refused the credentials or the vhost."""
    if isinstance(err, _AUTH_ERRORS):
        return True
    return isinstance(err, pex.ConnectionClosedByBroker) and err.reply_code in PERMISSION_CODES


def failure_reason(err: BaseException | None) -> str:
    """Why a connection attempt failed or an open connection went away, on one line.

    pika wraps a failed attempt several layers deep (AMQPConnectionError -> workflow failed -> connector
    phase error -> the socket's OSError) and the outer exception's str() is often empty; the worker's one
    WARNING per attempt is all the default level shows (logs.quiet_pika), so it names the phase and the
    root cause itself: "TCP connect failed: Connection refused".
    """
    if err is None:
        return "no reason given"
    # AMQPConnectionError(AMQPConnectionWorkflowFailed(...)): the wrapper says nothing of its own.
    if type(err) is pex.AMQPConnectionError and err.args and isinstance(err.args[0], BaseException):
        return failure_reason(err.args[0])
    if isinstance(err, cw.AMQPConnectionWorkflowFailed):
        return failure_reason(err.exceptions[-1] if err.exceptions else None)
    if isinstance(err, cw.AMQPConnectorSocketConnectError):
        inner = err.exception
        return f"TCP connect failed: {_os_error(inner) if isinstance(inner, OSError) else error_line(inner)}"
    if isinstance(err, cw.AMQPConnectorTransportSetupError):
        return f"TLS setup failed: {error_line(err.exception)}"
    if isinstance(err, cw.AMQPConnectorAMQPHandshakeError):
        return f"AMQP handshake failed: {failure_reason(err.exception)}"
    if isinstance(err, cw.AMQPConnectorStackTimeout):
        return "timed out before the connection was open"
    if isinstance(err, socket.gaierror):
        return f"address lookup failed: {_os_error(err)}"
    if isinstance(err, ssl.SSLError):
        return f"TLS failed: {error_line(err)}"
    if isinstance(err, pex.ConnectionClosedByBroker):
        return f"closed by the broker: {err.reply_code} {err.reply_text}"
    if isinstance(err, pex.ConnectionClosed):
        return f"closed: {err.reply_code} {err.reply_text}"
    if isinstance(err, pex.AMQPHeartbeatTimeout):
        return f"no heartbeat from the broker ({error_line(err)})"
    if isinstance(err, pex.StreamLostError):
        return f"connection lost: {str(err) or type(err).__name__}"
    if isinstance(err, OSError):
        return _os_error(err)
    return error_line(err)


def _os_error(exc: OSError) -> str:
    return exc.strerror or error_line(exc)


def describe(url: str) -> str:
    """Endpoint for logs (URLs never carry credentials; config validation enforces it)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or (5671 if parts.scheme == 'amqps' else 5672)}"
