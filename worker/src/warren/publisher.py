"""Publisher library: persistent, mandatory, confirmed publishes, pipelined for bulk; DLQ replay.

Bulk publishing drives a pika SelectConnection synchronously: up to `window` messages are in flight
(published, not yet confirmed) at once, which is what makes confirms fast. BlockingConnection's
confirm mode waits for each confirm in turn (one round trip plus an fsync per message).
"""

from __future__ import annotations

import json
import logging
import struct
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pika
import pika.data
import pika.exceptions as pex
from pika.adapters.select_connection import IOLoop

from warren.retry import H_EXCHANGE, H_ROUTING_KEY, replay_headers

log = logging.getLogger("warren.publisher")

DEFAULT_URL = "amqp://127.0.0.1:5672/"
# Unconfirmed messages in flight. The broker confirms persistent messages in batches, after they reach
# disk; a window smaller than what arrives during one such batch leaves the broker idle while the
# publisher waits. On the benchmark VM bulk throughput rose from 7,600 (window 1000) through 9,900 (4000)
# to 10,400-11,500 msg/s at 8000, no better beyond (docs/benchmarks.md).
DEFAULT_WINDOW = 8000

# One encoder for every message: json.dumps with non-default options builds a new one per call. NaN and
# infinite numbers raise ValueError: Python would write NaN / Infinity, which is not JSON.
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class PublishError(Exception):
    """Connection or protocol failure; the state of unconfirmed messages is unknown."""


class AccessRefused(PublishError):
    """The broker refused the credentials or the vhost."""


class Unroutable(PublishError):
    """A mandatory publish matched no queue (basic.return)."""


class Nacked(PublishError):
    """The broker refused to store a message (basic.nack)."""


@dataclass(frozen=True)
class OutgoingMessage:
    exchange: str
    routing_key: str
    body: bytes
    message_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    headers: Mapping[str, Any] | None = None
    content_type: str | None = "application/json"

    def __post_init__(self) -> None:
        # Checked here, where the caller can be told which message is wrong: inside publish_many, pika
        # would raise from its I/O loop with the messages before it in an unknown state.
        if self.headers:
            try:
                pika.data.encode_table([], dict(self.headers))
            except pex.UnsupportedAMQPFieldException as exc:  # pika encodes no float
                raise ValueError(
                    f"header value {exc.args[-1]!r} has no AMQP encoding; send it as text"
                ) from None
            except struct.error:
                raise ValueError("a header integer is beyond AMQP's 64 bits") from None
            except pex.ShortStringTooLong:
                raise ValueError("a header name is longer than AMQP's 255 bytes") from None

    @classmethod
    def json(
        cls,
        exchange: str,
        routing_key: str,
        body: Any,
        *,
        message_id: str | None = None,
        headers: Mapping[str, Any] | None = None,
    ) -> OutgoingMessage:
        """`body` as compact UTF-8 JSON; ValueError when it has none (NaN, infinity, a lone surrogate)."""
        try:
            data = _COMPACT_JSON.encode(body).encode("utf-8")
        except ValueError as exc:
            raise ValueError(f"body cannot be sent as JSON: {exc}") from None
        return cls(exchange, routing_key, data, message_id or str(uuid.uuid4()), headers)


@dataclass
class PublishResult:
    confirmed: int = 0  # stored by the broker (routed and confirmed)
    returned: list[tuple[OutgoingMessage, str]] = field(default_factory=list)  # unroutable, with reason
    nacked: list[OutgoingMessage] = field(default_factory=list)  # broker refused to store

    @property
    def ok(self) -> bool:
        return not self.returned and not self.nacked


def connection_parameters(
    url: str, username: str, password: str, vhost: str, timeout: float = 10.0, name: str = "warren-publish"
) -> pika.ConnectionParameters:
    parts = urlsplit(url)
    if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
        raise ValueError(f"not an amqp:// URL: {url!r}")
    tls = parts.scheme == "amqps"
    params = pika.ConnectionParameters(
        host=parts.hostname,
        port=parts.port or (5671 if tls else 5672),
        virtual_host=vhost,
        credentials=pika.PlainCredentials(username, password),
        socket_timeout=timeout,
        stack_timeout=timeout * 2,
        connection_attempts=1,
        client_properties={"connection_name": name},
    )
    if tls:
        import ssl

        params.ssl_options = pika.SSLOptions(ssl.create_default_context(), parts.hostname)
    return params


def _is_access_error(err: BaseException) -> bool:
    if isinstance(
        err, pex.AuthenticationError | pex.ProbableAuthenticationError | pex.ProbableAccessDeniedError
    ):
        return True
    return isinstance(err, pex.ConnectionClosedByBroker) and err.reply_code in (403, 530)


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

    Not thread-safe: use one Publisher per thread.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        username: str = "guest",
        password: str = "guest",
        vhost: str = "/",
        window: int = DEFAULT_WINDOW,
        timeout: float = 30.0,
    ) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        self.params = connection_parameters(url, username, password, vhost, min(timeout, 10.0))
        self.window = window
        self.timeout = timeout
        self._ioloop: Any = None
        self._connection: Any = None
        self._channel: Any = None
        self._error: BaseException | None = None
        # bulk state
        self._source: Iterator[OutgoingMessage] | None = None
        self._outstanding: OrderedDict[int, OutgoingMessage] = OrderedDict()
        self._returns: Counter[str] = Counter()
        self._return_text: dict[str, str] = {}
        self._seq = 0
        self._result = PublishResult()
        self._last_progress = 0.0
        self._progress_timer: Any = None

    # ---- connection ------------------------------------------------------------------------------

    def __enter__(self) -> Publisher:
        self.connect()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def connect(self) -> None:
        self._ioloop = IOLoop()
        self._error = None
        self._connection = pika.SelectConnection(
            parameters=self.params,
            on_open_callback=lambda conn: conn.channel(on_open_callback=self._on_channel_open),
            on_open_error_callback=self._on_fail,
            on_close_callback=self._on_fail,
            custom_ioloop=self._ioloop,
        )
        self._run_loop()
        if self._channel is None:
            raise self._wrap(self._error)

    def _on_channel_open(self, channel: Any) -> None:
        self._channel = channel
        channel.add_on_return_callback(self._on_return)
        channel.add_on_close_callback(self._on_channel_closed)
        channel.confirm_delivery(self._on_confirm, callback=lambda _f: self._ioloop.stop())

    def _on_fail(self, _conn: Any, err: BaseException) -> None:
        if self._error is None:
            self._error = err
        self._channel = None
        self._ioloop.stop()

    def _on_channel_closed(self, _channel: Any, reason: BaseException) -> None:
        if self._error is None:
            self._error = reason
        self._channel = None
        if self._connection.is_open:
            self._connection.close()
        else:
            self._ioloop.stop()

    @staticmethod
    def _wrap(err: BaseException | None) -> PublishError:
        if err is None:
            return PublishError("connection closed")
        if _is_access_error(err):
            return AccessRefused(f"access refused: {err}")
        if isinstance(err, pex.ChannelClosedByBroker):
            return PublishError(f"broker closed the channel: {err.reply_code} {err.reply_text}")
        return PublishError(f"{type(err).__name__}: {err}" if str(err) else type(err).__name__)

    def _run_loop(self) -> None:
        deadline_timer = self._ioloop.call_later(self.timeout, self._on_timeout)
        try:
            self._ioloop.start()
        finally:
            self._ioloop.remove_timeout(deadline_timer)

    def _on_timeout(self) -> None:
        self._error = TimeoutError(f"no progress within {self.timeout:g}s")
        self._ioloop.stop()

    def close(self) -> None:
        conn = self._connection
        if conn is not None and not (conn.is_closed or conn.is_closing):
            self._error = self._error or PublishError("closed")
            conn.close()
            self._run_loop()
        if self._ioloop is not None:
            self._ioloop.close()
            self._ioloop = None
        self._connection = self._channel = None

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

        Raises Unroutable when no queue is bound for it, Nacked when the broker refuses it.
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
        """Publish everything `messages` yields with at most `window` unconfirmed at a time."""
        if self._channel is None:
            raise PublishError("not connected")
        self._source = iter(messages)
        self._result = PublishResult()
        self._last_progress = time.monotonic()
        self._ioloop.add_callback_threadsafe(self._fill)
        self._progress_timer = self._ioloop.call_later(1.0, self._check_progress)
        try:
            self._ioloop.start()
        finally:
            self._ioloop.remove_timeout(self._progress_timer)
        if self._source is not None or self._outstanding:
            unconfirmed = len(self._outstanding)
            self._outstanding.clear()
            self._source = None
            err = self._wrap(self._error)
            raise PublishError(
                f"{err}; {self._result.confirmed} messages confirmed, "
                f"{unconfirmed} unconfirmed (state unknown)"
            ) from None
        return self._result

    def _fill(self) -> None:
        if self._channel is None:
            return
        while self._source is not None and len(self._outstanding) < self.window:
            try:
                msg = next(self._source)
            except StopIteration:
                self._source = None
                break
            self._channel.basic_publish(
                msg.exchange, msg.routing_key, msg.body, _properties(msg), mandatory=True
            )
            self._seq += 1
            self._outstanding[self._seq] = msg
        if self._source is None and not self._outstanding:
            self._ioloop.stop()

    def _check_progress(self) -> None:
        if time.monotonic() - self._last_progress > self.timeout:
            self._error = TimeoutError(f"no confirms within {self.timeout:g}s")
            self._ioloop.stop()
            return
        self._progress_timer = self._ioloop.call_later(1.0, self._check_progress)

    def _on_return(self, _channel: Any, method: Any, props: Any, _body: bytes) -> None:
        # basic.return for a publish arrives before its confirm; match on our message_id.
        mid = props.message_id or ""
        self._returns[mid] += 1
        self._return_text[mid] = f"{method.reply_code} {method.reply_text}"

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        acked = isinstance(method, pika.spec.Basic.Ack)
        done: list[OutgoingMessage] = []
        if method.multiple:
            while self._outstanding and next(iter(self._outstanding)) <= method.delivery_tag:
                done.append(self._outstanding.popitem(last=False)[1])
        elif method.delivery_tag in self._outstanding:
            done.append(self._outstanding.pop(method.delivery_tag))
        for msg in done:
            if self._returns.get(msg.message_id):
                self._returns[msg.message_id] -= 1
                self._result.returned.append((msg, self._return_text.get(msg.message_id, "NO_ROUTE")))
            elif acked:
                self._result.confirmed += 1
            else:
                self._result.nacked.append(msg)
        self._last_progress = time.monotonic()
        self._fill()


# ---- DLQ replay ------------------------------------------------------------------------------------


@dataclass
class ReplayResult:
    replayed: int = 0
    skipped: list[str] = field(default_factory=list)  # one line per message left in the DLQ, with why


def _header(headers: Mapping[str, Any], name: str) -> str | None:
    value = headers.get(name)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value if isinstance(value, str) else None


def replay_dead_letters(
    params: pika.ConnectionParameters, queue: str, limit: int | None = None
) -> ReplayResult:
    """Move messages from a DLQ back to where they were first published, with confirms.

    Each message is acked in the DLQ only after the broker confirmed its republish. Messages that
    cannot be replayed (no origin headers, unroutable, nacked) are left in the DLQ. Replays at most
    `limit` messages and never more than the DLQ held at the start, so a message that fails again
    and is dead-lettered during the run is not replayed in a loop.
    """
    result = ReplayResult()
    try:
        connection = pika.BlockingConnection(params)
    except pex.AMQPConnectionError as exc:
        if _is_access_error(exc):
            raise AccessRefused(f"access refused: {exc}") from None
        raise PublishError(f"cannot connect: {type(exc).__name__}: {exc}") from None
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        try:
            depth = channel.queue_declare(queue, passive=True).method.message_count
        except pex.ChannelClosedByBroker as exc:
            raise PublishError(f"queue {queue!r}: {exc.reply_code} {exc.reply_text}") from None
        budget = depth if limit is None else min(limit, depth)
        # Skipped messages stay unacked on this channel (so basic_get moves on) until close requeues them.
        for _ in range(budget):
            method, props, body = channel.basic_get(queue, auto_ack=False)
            if method is None:
                break
            headers = props.headers or {}
            exchange, routing_key = _header(headers, H_EXCHANGE), _header(headers, H_ROUTING_KEY)
            if exchange is None or routing_key is None:
                result.skipped.append(
                    f"message_id={props.message_id}: no {H_EXCHANGE}/{H_ROUTING_KEY} headers"
                )
                continue
            out = pika.BasicProperties(
                content_type=props.content_type,
                content_encoding=props.content_encoding,
                headers=replay_headers(headers),
                delivery_mode=2,
                priority=props.priority,
                correlation_id=props.correlation_id,
                reply_to=props.reply_to,
                message_id=props.message_id,
                timestamp=props.timestamp,
                type=props.type,
                app_id=props.app_id,
            )
            try:
                channel.basic_publish(exchange, routing_key, body, out, mandatory=True)
            except pex.UnroutableError:
                result.skipped.append(
                    f"message_id={props.message_id}: unroutable to exchange {exchange!r} key {routing_key!r}"
                )
                continue
            except pex.NackError:
                result.skipped.append(f"message_id={props.message_id}: broker nacked the republish")
                continue
            channel.basic_ack(method.delivery_tag)
            result.replayed += 1
    finally:
        if connection.is_open:
            connection.close()
    return result
