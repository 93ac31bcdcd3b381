"""The publisher's connection: one confirm-mode channel on the first endpoint that answers, driven
synchronously (the caller runs the I/O loop until a callback stops it), replaced after a loss."""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable, Sequence
from typing import Any

import pika
import pika.exceptions as pex
from pika.adapters.select_connection import IOLoop

from warren.connection import (
    Endpoints,
    blocked_reason,
    connection_parameters,
    describe,
    failure_reason,
    refuses_access,
)
from warren.outgoing import AccessRefused, CertificateRefused, PublishError
from warren.tls import certificate_problem

log = logging.getLogger("warren.publisher")

NAME = "warren-publish"  # the connection name the management UI shows


class ConfirmChannel:
    """`channel` is open in confirm mode while connected; `error` says why the loop last stopped for a
    failure and `blocked` why the broker blocks publishing now (Connection.Blocked), if it does."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        username: str,
        password: str,
        vhost: str,
        timeout: float,
        tls_context: ssl.SSLContext | None,
        on_confirm: Callable[[Any], None],
        on_return: Callable[[Any, Any, Any, bytes], None],
    ) -> None:
        # Every URL is checked now, not when the connection first fails over to it.
        self._params = {
            u: connection_parameters(
                u,
                vhost=vhost,
                username=username,
                password=password,
                timeout=min(timeout, 10.0),
                name=NAME,
                tls_context=tls_context,
            )
            for u in urls
        }
        self.endpoints = Endpoints(tuple(urls))
        self.timeout = timeout
        self.url = urls[0]
        self.ioloop: Any = None
        self.channel: Any = None
        self.error: BaseException | None = None
        self.blocked: str | None = None
        self._connection: Any = None
        self._on_confirm = on_confirm
        self._on_return = on_return

    def connect(self) -> None:
        """Connect to the first endpoint that answers, trying each once; PublishError names why each failed
        (AccessRefused at once: another endpoint of the same cluster would refuse too; CertificateRefused when
        every endpoint's certificate was refused, which only an operator can mend)."""
        reasons = []
        certificates_refused = 0
        for _ in self.endpoints.urls:
            url = self.endpoints.next_url()
            try:
                self._open(url)
            except AccessRefused:
                raise
            except PublishError as exc:
                certificates_refused += isinstance(exc, CertificateRefused)
                reasons.append(f"cannot connect to {describe(url)}: {exc}")
                continue
            self.endpoints.succeeded()
            return
        failed = CertificateRefused if certificates_refused == len(self.endpoints.urls) else PublishError
        raise failed("; ".join(reasons))

    def _open(self, url: str) -> None:
        self._discard_connection()
        self.url = url
        self.ioloop = IOLoop()
        self.error = None
        self.blocked = None
        self._connection = pika.SelectConnection(
            parameters=self._params[url],
            on_open_callback=lambda conn: conn.channel(on_open_callback=self._on_channel_open),
            on_open_error_callback=self._on_fail,
            on_close_callback=self._on_fail,
            custom_ioloop=self.ioloop,
        )
        self._connection.add_on_connection_blocked_callback(self._on_blocked)
        self._connection.add_on_connection_unblocked_callback(self._on_unblocked)
        # pika's own stack timeout ends an attempt that hangs while opening (a connection abandoned then
        # cannot be closed cleanly); this later deadline only catches a channel that never opens.
        self.run(self._params[url].stack_timeout + 1.0)
        if self.channel is None:
            raise self.failure(self.error)

    def reconnect(self, deadline: float) -> None:
        """After a lost connection: connect again, passes over every endpoint with the reconnect backoff
        between them, until `deadline` (on time.monotonic()'s clock)."""
        while True:
            try:
                self.connect()
                return
            except AccessRefused:
                raise
            except PublishError as exc:
                delay = self.endpoints.failed()
                if time.monotonic() + delay >= deadline:
                    raise PublishError(f"{exc}; gave up after {self.timeout:g}s without progress") from None
                time.sleep(delay)

    def _on_channel_open(self, channel: Any) -> None:
        self.channel = channel
        channel.add_on_return_callback(self._on_return)
        channel.add_on_close_callback(self._on_channel_closed)
        channel.confirm_delivery(self._on_confirm, callback=lambda _f: self.ioloop.stop())

    def _on_fail(self, _conn: Any, err: BaseException) -> None:
        if self.error is None:
            self.error = err
        self.channel = None
        self.ioloop.stop()

    def _on_blocked(self, _conn: Any, frame: Any) -> None:
        self.blocked = blocked_reason(frame.method)
        log.info("%s", self.blocked)  # the error says it if publishing fails

    def _on_unblocked(self, _conn: Any, _frame: Any) -> None:
        self.blocked = None
        log.info("broker unblocked publishing")

    def _on_channel_closed(self, channel: Any, reason: BaseException) -> None:
        if channel is not self.channel:  # one that renew_channel replaced
            return
        if self.error is None:
            self.error = reason
        self.channel = None
        if self._connection.is_open:
            self._connection.close()
        else:
            self.ioloop.stop()

    def renew_channel(self) -> None:
        """Replace the channel by a new one on the same connection (nothing may be unconfirmed on the old
        one); on failure, `error` says why and `channel` is None."""
        old, self.channel = self.channel, None
        self._connection.channel(on_open_callback=self._on_channel_open)
        if old is not None and old.is_open:
            old.close()
        self.run()  # until the new channel is in confirm mode
        if self.channel is None and self.error is None:
            self.error = PublishError("no new channel")

    def idle(self, seconds: float) -> None:
        """Serve the connection (heartbeats, a close) for `seconds`, or until it fails (`error` says why)."""
        if seconds <= 0:
            return
        timer = self.ioloop.call_later(seconds, self.ioloop.stop)
        try:
            self.ioloop.start()
        finally:
            self.ioloop.remove_timeout(timer)

    def failure(self, err: BaseException | None) -> PublishError:
        """The error to raise for why the connection or the publishing ended; it names a broker alarm that
        was blocking publishing at the time, whatever ended it (a timeout, a lost connection)."""
        wrapped = publish_error(err)
        return type(wrapped)(f"{self.blocked}; {wrapped}") if self.blocked else wrapped

    def run(self, seconds: float | None = None) -> None:
        seconds = self.timeout if seconds is None else seconds
        deadline_timer = self.ioloop.call_later(seconds, lambda: self._on_timeout(seconds))
        try:
            self.ioloop.start()
        finally:
            self.ioloop.remove_timeout(deadline_timer)

    def _on_timeout(self, seconds: float) -> None:
        self.error = PublishError(f"no progress within {seconds:g}s")
        self.ioloop.stop()

    def close(self) -> None:
        conn = self._connection
        if conn is not None and not (conn.is_closed or conn.is_closing):
            self.error = self.error or PublishError("closed")
            conn.close()
            # A blocked broker reads nothing, so its Close-Ok never comes: do not wait `timeout` for it.
            self.run(1.0 if self.blocked else None)
        self._discard_connection()

    def _discard_connection(self) -> None:
        if self.ioloop is not None:
            self.ioloop.close()
            self.ioloop = None
        self._connection = self.channel = None


def publish_error(err: BaseException | None) -> PublishError:
    """The PublishError that says why a connection or channel ended."""
    if isinstance(err, PublishError):
        return err
    if err is None:
        return PublishError("connection closed")
    if refuses_access(err):
        return AccessRefused(f"access refused: {err}")
    problem = certificate_problem(err)
    if problem is not None:
        return CertificateRefused(f"TLS: {problem}")
    if isinstance(err, pex.ChannelClosedByBroker):
        return PublishError(f"broker closed the channel: {err.reply_code} {err.reply_text}")
    return PublishError(failure_reason(err))
