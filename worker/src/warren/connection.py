"""Broker endpoints: rotation across cluster nodes, reconnect backoff, pika connection parameters."""

from __future__ import annotations

import random
import ssl
from urllib.parse import urlsplit

import pika

from warren.config import BrokerConfig
from warren.retry import Backoff

RECONNECT_BACKOFF = Backoff(initial=1.0, multiplier=2.0, maximum=30.0)


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

    @property
    def upcoming(self) -> str:
        """The endpoint `next_url` returns next."""
        return self.urls[self._next]

    def failed(self) -> float:
        """Record a failed or lost connection; returns the delay before the next attempt."""
        self.failures += 1
        return self.backoff.delay(self.failures, self._rng)

    def succeeded(self) -> None:
        self.failures = 0


def connection_parameters(url: str, broker: BrokerConfig) -> pika.ConnectionParameters:
    parts = urlsplit(url)
    tls = parts.scheme == "amqps"
    params = pika.ConnectionParameters(
        host=parts.hostname,
        port=parts.port or (5671 if tls else 5672),
        virtual_host=broker.vhost,
        credentials=pika.PlainCredentials(broker.username, broker.password, erase_on_connect=False),
        heartbeat=broker.heartbeat,
        socket_timeout=broker.connection_timeout,
        stack_timeout=broker.connection_timeout * 2,
        blocked_connection_timeout=None,
        connection_attempts=1,
        client_properties={"connection_name": "warren-worker"},
    )
    if tls:
        params.ssl_options = pika.SSLOptions(ssl.create_default_context(), parts.hostname)
    return params


def describe(url: str) -> str:
    """Endpoint for logs (URLs never carry credentials; config validation enforces it)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or (5671 if parts.scheme == 'amqps' else 5672)}"
