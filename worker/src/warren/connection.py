"""Connecting to the broker, for both programs: endpoint rotation and reconnect backoff, pika connection
parameters, and telling a refusal (credentials, vhost, permissions) from any other failure."""

from __future__ import annotations

import random
import ssl
from urllib.parse import urlsplit

import pika
import pika.exceptions as pex

from warren.retry import Backoff

RECONNECT_BACKOFF = Backoff(initial=1.0, multiplier=2.0, maximum=30.0)

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


def connection_parameters(
    url: str,
    *,
    vhost: str,
    username: str,
    password: str,
    timeout: float,
    name: str,
    heartbeat: int | None = None,
) -> pika.ConnectionParameters:
    """One connection attempt to `url` (amqp:// or amqps://host[:port]); ValueError for any other URL.

    `timeout` bounds the TCP connect, twice it the AMQP handshake; `heartbeat` None takes the broker's.
    `name` is the connection name the management UI shows.
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
        socket_timeout=timeout,
        stack_timeout=timeout * 2,
        blocked_connection_timeout=None,
        connection_attempts=1,
        client_properties={"connection_name": name},
    )
    if tls:
        params.ssl_options = pika.SSLOptions(ssl.create_default_context(), parts.hostname)
    return params


def refuses_access(err: BaseException) -> bool:
    """Whether a connection failed because the broker refused the credentials or the vhost."""
    if isinstance(err, _AUTH_ERRORS):
        return True
    return isinstance(err, pex.ConnectionClosedByBroker) and err.reply_code in PERMISSION_CODES


def describe(url: str) -> str:
    """Endpoint for logs (URLs never carry credentials; config validation enforces it)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or (5671 if parts.scheme == 'amqps' else 5672)}"
