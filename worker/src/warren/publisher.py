"""Publisher library: persistent, mandatory, confirmed publishes, pipelined for bulk.

Bulk publishing drives a pika SelectConnection synchronously: up to `window` messages are in flight
(published, not yet confirmed) at once, which is what makes confirms fast. BlockingConnection's
confirm mode waits for each confirm in turn (one round trip plus an fsync per message).
"""

from __future__ import annotations

import json
import logging
import ssl
import struct
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pika
import pika.data
import pika.exceptions as pex
from pika.adapters.select_connection import IOLoop

from warren.connection import connection_parameters, refuses_access
from warren.tls import certificate_problem

log = logging.getLogger("warren.publisher")

DEFAULT_URL = "amqp://127.0.0.1:5672/"
# Unconfirmed messages in flight. The broker confirms persistent messages in batches, after they reach
# disk; a window smaller than what arrives during one such batch leaves the broker idle while the
# publisher waits; 8000 is where the bulk benchmark stopped gaining (docs/perf-notes.md).
DEFAULT_WINDOW = 8000

# One encoder for every message: json.dumps with non-default options builds a new one per call. NaN and
# infinite numbers raise ValueError: Python would write NaN / Infinity, which is not JSON.
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class PublishError(Exception):
    """Connection or protocol failure; the state of unconfirmed messages is unknown."""


class AccessRefused(PublishError):
    """The broker refused the credentials or the vhost."""


class CertificateRefused(PublishError):
    """The broker's TLS certificate was refused: untrusted, a name mismatch or expired (warren.tls)."""


class Unconfirmed(PublishError):
    """The connection failed while messages were unconfirmed: whether the broker stored them is unknown."""


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
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        self.params = connection_parameters(
            url,
            vhost=vhost,
            username=username,
            password=password,
            timeout=min(timeout, 10.0),
            name="warren-publish",
            tls_context=tls_context,
        )
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
        if refuses_access(err):
            return AccessRefused(f"access refused: {err}")
        problem = certificate_problem(err)
        if problem is not None:
            return CertificateRefused(f"TLS: {problem}")
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
            raise Unconfirmed(
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
