"""Publisher library: persistent, mandatory, confirmed publishes, pipelined for bulk.

Bulk publishing drives a pika SelectConnection synchronously: up to `window` messages are in flight
(published, not yet confirmed) at once, which is what makes confirms fast. BlockingConnection's
confirm mode waits for each confirm in turn (one round trip plus an fsync per message).
"""

from __future__ import annotations

import logging
import ssl
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, NoReturn

import pika
import pika.exceptions as pex

from warren.confirm_channel import ConfirmChannel
from warren.connection import describe, failure_reason
from warren.outgoing import (
    DEFAULT_MAX_ATTEMPTS,
    ConfirmTracker,
    Nacked,
    OutgoingMessage,
    PublishError,
    PublishResult,
    Unconfirmed,
    Unroutable,
)

log = logging.getLogger("warren.publisher")

DEFAULT_URL = "amqp://127.0.0.1:5672/"
# Unconfirmed messages in flight. The broker confirms persistent messages in batches, after they reach
# disk; a window smaller than what arrives during one such batch leaves the broker idle while the
# publisher waits; 8000 is where the bulk benchmark stopped gaining (docs/perf-notes.md).
DEFAULT_WINDOW = 8000


def _properties(msg: OutgoingMessage) -> pika.BasicProperties:
    return pika.BasicProperties(
        content_type=msg.content_type,
        delivery_mode=2,
        message_id=msg.message_id,
        timestamp=int(time.time()),
        headers=dict(msg.headers) if msg.headers else None,
        app_id="warren-publish",
    )


class Publisher:
    """`with Publisher(...) as p: p.publish("events", "order.created", {"order_id": 1})`.

    `url` is one endpoint or several (a cluster's nodes): connecting tries each in turn. A connection lost
    while publishing is replaced, on the next endpoint that answers, within `timeout` seconds, and the
    messages it left unconfirmed are published again (at least once: those may arrive twice). A message the
    broker refuses (nack) is published again, with the same message_id and properties, on a new channel
    after a delay (warren.outgoing.resend_delay), until it was published `max_attempts` times;
    result.nacked lists those refused every time. Not thread-safe: use one Publisher per thread.
    """

    def __init__(
        self,
        url: str | Sequence[str] = DEFAULT_URL,
        *,
        username: str = "guest",
        password: str = "guest",
        vhost: str = "/",
        window: int = DEFAULT_WINDOW,
        timeout: float = 30.0,
        tls_context: ssl.SSLContext | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        self._link = ConfirmChannel(
            (url,) if isinstance(url, str) else tuple(url),
            username=username,
            password=password,
            vhost=vhost,
            timeout=timeout,
            tls_context=tls_context,
            on_confirm=self._on_confirm,
            on_return=self._on_return,
        )
        self.window = window
        self.timeout = timeout
        self._source: Iterator[OutgoingMessage] | None = None
        self._confirms = ConfirmTracker(max_attempts)
        self._last_progress = 0.0
        self._progress_timer: Any = None

    def __enter__(self) -> Publisher:
        self.connect()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def connect(self) -> None:
        """Connect to the first endpoint that answers (ConfirmChannel.connect)."""
        self._link.connect()
        self._confirms.new_channel()

    def close(self) -> None:
        self._link.close()

    # ---- publishing ------------------------------------------------------------------------------

    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: Any,
        *,
        message_id: str | None = None,
        headers: Mapping[str, Any] | None = None,
    ) -> str:
        """Publish one message (JSON-encoded unless `body` is bytes); returns its message_id.

        Raises Unroutable when no queue is bound for it, Nacked when the broker refused it every time
        (`max_attempts`).
        """
        if isinstance(body, bytes):
            msg = OutgoingMessage(exchange, routing_key, body, message_id or str(uuid.uuid4()), headers)
        else:
            msg = OutgoingMessage.json(exchange, routing_key, body, message_id=message_id, headers=headers)
        result = self.publish_many([msg])
        if result.returned:
            raise Unroutable(
                f"unroutable: exchange {exchange!r} routing key {routing_key!r} ({result.returned[0][1]})"
            )
        if result.nacked:
            raise Nacked(f"broker nacked message {msg.message_id}")
        return msg.message_id

    def publish_many(self, messages: Iterable[OutgoingMessage]) -> PublishResult:
        """Publish everything `messages` yields with at most `window` unconfirmed at a time.

        A lost connection is replaced and refused messages are sent again (see the class); raises Unconfirmed,
        with the count confirmed, when that fails or publishing stops for another reason (a timeout, a broker
        alarm, a closed channel).
        """
        if self._link.channel is None:
            raise PublishError("not connected")
        self._source = iter(messages)
        self._confirms.start()
        self._last_progress = time.monotonic()
        while True:
            self._publish_until_stopped()
            if self._source is None and not self._confirms and not self._confirms.waiting:
                return self._confirms.result
            if self._link.error is None:  # stopped to wait for a message to send again, or after a nack
                self._wait_then_renew_channel()
                if self._link.error is None:
                    continue
            failure = self._link.error
            unconfirmed = self._confirms.new_channel()
            if cured_by_reconnecting(failure) and not self._link.blocked:
                lost = f"lost the connection to {describe(self._link.url)} ({failure_reason(failure)})"
                log.info("%s; reconnecting", lost)
                try:
                    self._link.reconnect(self._last_progress + self.timeout)
                except PublishError as exc:
                    self._fail(f"{lost}; {exc}", unconfirmed)
                self._last_progress = time.monotonic()  # a new connection is progress
                # Sent again first (new_channel made them due): the broker may or may not have them.
                self._confirms.result.reconnects += 1
                self._confirms.result.republished += len(unconfirmed)
                continue
            self._fail(str(self._link.failure(failure)), unconfirmed)

    def _publish_until_stopped(self) -> None:
        ioloop = self._link.ioloop
        ioloop.add_callback_threadsafe(self._fill)
        self._progress_timer = ioloop.call_later(1.0, self._check_progress)
        try:
            ioloop.start()
        finally:
            ioloop.remove_timeout(self._progress_timer)

    def _wait_then_renew_channel(self) -> None:
        """Nothing is in flight: wait (serving the connection) until the next message to send again is due,
        then go on, with a new channel after a nack: the old one may refuse whatever it is sent."""
        due = self._confirms.next_due()
        delay = 0.0 if due is None else max(0.0, due - time.monotonic())
        if self._confirms.refused_on_channel:
            log.warning(
                "broker refused %d messages (nack); sending them again in %.0fs on a new channel",
                self._confirms.refused_waiting,
                delay,
            )
        self._link.idle(delay)
        if self._link.error is None and self._confirms.refused_on_channel:
            self._link.renew_channel()
            self._confirms.new_channel()  # nothing was in flight on the old one
        self._last_progress = time.monotonic()  # waiting for a resend is not a stall

    def _fail(self, reason: str, unconfirmed: list[OutgoingMessage]) -> NoReturn:
        self._source = None
        confirmed = self._confirms.result.confirmed
        refused = self._confirms.refused_waiting
        raise Unconfirmed(
            f"{reason}: {confirmed} messages confirmed, {len(unconfirmed)} unconfirmed "
            "(those may or may not have reached the broker)"
            + (f", {refused} refused (nack) and not sent again" if refused else ""),
            confirmed,
            tuple(unconfirmed),
        ) from None

    def _fill(self) -> None:
        channel = self._link.channel
        if channel is None:
            return
        tracker = self._confirms
        now = time.monotonic()
        while not tracker.refused_on_channel and len(tracker) < self.window:
            again = tracker.take_due(now)
            if again is not None:
                msg, attempt = again
            elif self._source is not None:
                try:
                    msg, attempt = next(self._source), 1
                except StopIteration:
                    self._source = None
                    continue
                tracker.result.sent += 1
            else:
                break
            channel.basic_publish(msg.exchange, msg.routing_key, msg.body, _properties(msg), mandatory=True)
            tracker.sent(msg, attempt)
        # With nothing in flight, stop when done, to change channel after a nack, or to wait for a resend.
        if not tracker and (tracker.refused_on_channel or self._source is None):
            self._link.ioloop.stop()

    def _check_progress(self) -> None:
        if time.monotonic() - self._last_progress > self.timeout:
            self._link.error = PublishError(f"no confirms within {self.timeout:g}s")
            self._link.ioloop.stop()
            return
        self._progress_timer = self._link.ioloop.call_later(1.0, self._check_progress)

    def _on_return(self, _channel: Any, method: Any, props: Any, _body: bytes) -> None:
        self._confirms.returned(props.message_id or "", f"{method.reply_code} {method.reply_text}")

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        self._confirms.confirm(
            method.delivery_tag, multiple=method.multiple, acked=isinstance(method, pika.spec.Basic.Ack)
        )
        self._last_progress = time.monotonic()
        self._fill()


def cured_by_reconnecting(err: BaseException | None) -> bool:
    """Whether publishing stopped because the connection went away (not refused, not closed for a reason a
    new connection would meet again, not a timeout)."""
    if isinstance(err, pex.ConnectionClosedByBroker):
        # 320 CONNECTION_FORCED: the node is shutting down or an operator closed it; other codes are errors.
        return bool(err.reply_code == 320)
    return isinstance(err, pex.AMQPConnectionError) and not isinstance(err, pex.ConnectionClosedByClient)
