"""What the publisher sends and what it learns back: messages, results, errors, and confirm tracking.

Pure logic (no I/O), so the publisher's bookkeeping is unit-testable without a broker.
"""

from __future__ import annotations

import json
import struct
import uuid
from collections import Counter, OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pika.data
import pika.exceptions as pex

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
    """Publishing stopped with messages unconfirmed: whether the broker stored those is unknown.

    `confirmed` counts the messages stored; `unconfirmed` are the ones in flight when it stopped (the rest
    of the input was not sent).
    """

    def __init__(self, text: str, confirmed: int = 0, unconfirmed: tuple[OutgoingMessage, ...] = ()) -> None:
        super().__init__(text)
        self.confirmed = confirmed
        self.unconfirmed = unconfirmed


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
    reconnects: int = 0  # connections lost and replaced while publishing
    republished: int = 0  # sent again on the new connection, unconfirmed on the lost one: may arrive twice

    @property
    def ok(self) -> bool:
        return not self.returned and not self.nacked


class ConfirmTracker:
    """The messages published on one channel and not yet confirmed, and what the broker said of the rest.

    A mandatory publish that matches no queue is returned (basic.return) before its confirm arrives, so a
    confirm of a returned message_id counts as returned, not stored.
    """

    def __init__(self) -> None:
        self.result = PublishResult()
        self._outstanding: OrderedDict[int, OutgoingMessage] = OrderedDict()
        self._seq = 0
        self._returns: Counter[str] = Counter()
        self._return_text: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._outstanding)

    def new_channel(self) -> list[OutgoingMessage]:
        """Publish sequence numbers start again on a new channel: forget the old one's; returns the messages
        it left unconfirmed."""
        unconfirmed = list(self._outstanding.values())
        self._outstanding.clear()
        self._seq = 0
        self._returns.clear()
        return unconfirmed

    def sent(self, msg: OutgoingMessage) -> None:
        self._seq += 1
        self._outstanding[self._seq] = msg

    def returned(self, message_id: str, reason: str) -> None:
        self._returns[message_id] += 1
        self._return_text[message_id] = reason

    def confirm(self, delivery_tag: int, *, multiple: bool, acked: bool) -> None:
        done: list[OutgoingMessage] = []
        if multiple:
            while self._outstanding and next(iter(self._outstanding)) <= delivery_tag:
                done.append(self._outstanding.popitem(last=False)[1])
        elif delivery_tag in self._outstanding:
            done.append(self._outstanding.pop(delivery_tag))
        for msg in done:
            if self._returns.get(msg.message_id):
                self._returns[msg.message_id] -= 1
                self.result.returned.append((msg, self._return_text.get(msg.message_id, "NO_ROUTE")))
            elif acked:
                self.result.confirmed += 1
            else:
                self.result.nacked.append(msg)
