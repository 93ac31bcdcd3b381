"""What the publisher sends and what it learns back: messages, results, errors, and confirm tracking.

Pure logic (no I/O), so the publisher's bookkeeping is unit-testable without a broker.
"""

from __future__ import annotations

import heapq
import itertools
import json
import struct
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
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


# A message the broker refuses (basic.nack) is published again, on a new channel, after a delay that starts
# at FIRST_RESEND_DELAY and doubles up to MAX_RESEND_DELAY, until it has been published `max_attempts` times.
# The defaults wait 15 s in all: after a node dies, a quorum queue's publishers may be refused for about 10 s
# (docs/operations.md).
DEFAULT_MAX_ATTEMPTS = 5
FIRST_RESEND_DELAY = 1.0
MAX_RESEND_DELAY = 8.0


@dataclass
class PublishResult:
    sent: int = 0  # messages taken from the input and published (each counted once)
    confirmed: int = 0  # stored by the broker (routed and confirmed)
    returned: list[tuple[OutgoingMessage, str]] = field(default_factory=list)  # unroutable, with reason
    nacked: list[OutgoingMessage] = field(default_factory=list)  # refused every one of max_attempts times
    resent: int = 0  # publishes of a message again after the broker refused it (nack)
    reconnects: int = 0  # connections lost and replaced while publishing
    republished: int = 0  # sent again on the new connection, unconfirmed on the lost one: may arrive twice

    @property
    def ok(self) -> bool:
        return not self.returned and not self.nacked


@dataclass(order=True)
class _SendAgain:
    due: float  # on the tracker's clock
    order: int  # first scheduled, first sent among those due at the same time
    msg: OutgoingMessage = field(compare=False)
    attempt: int = field(compare=False)  # the publish it will be: 1 is the first
    after_nack: bool = field(compare=False)  # refused (counts as resent), not lost with a connection


def resend_delay(attempt: int) -> float:
    """Seconds before publishing again a message refused on its `attempt`-th publish."""
    return min(FIRST_RESEND_DELAY * 2.0 ** (attempt - 1), MAX_RESEND_DELAY)


class ConfirmTracker:
    """The messages published on one channel and not yet confirmed, what the broker said of the rest, and
    the messages to publish again: refused ones (nack) after their delay, those a lost channel left
    unconfirmed.

    A mandatory publish that matches no queue is returned (basic.return) before its confirm arrives, so a
    confirm of a returned message_id counts as returned, not stored. After a nack nothing more should be
    published on the channel (`refused_on_channel`): a RabbitMQ 3.10 channel keeps refusing a quorum queue
    whose leader's node was down at its first publish there, so the publisher lets the channel's confirms
    settle and publishes again on a new one.
    """

    def __init__(
        self, max_attempts: int = DEFAULT_MAX_ATTEMPTS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self.max_attempts = max_attempts
        self.result = PublishResult()
        self.refused_on_channel = False
        self._clock = clock
        self._outstanding: OrderedDict[int, tuple[OutgoingMessage, int]] = OrderedDict()
        self._seq = 0
        self._returns: Counter[str] = Counter()
        self._return_text: dict[str, str] = {}
        self._again: list[_SendAgain] = []  # a heap: the earliest due first
        self._order = itertools.count()

    def __len__(self) -> int:
        return len(self._outstanding)

    def start(self) -> None:
        """A new publish_many: a new result, and nothing left to send again from a run that failed."""
        self.result = PublishResult()
        self._again.clear()

    def new_channel(self) -> list[OutgoingMessage]:
        """Publish sequence numbers start again on a new channel: forget the old one's. Returns the messages
        it left unconfirmed, due to be sent again at once (whether the broker has them is unknown)."""
        unconfirmed = list(self._outstanding.values())
        self._outstanding.clear()
        self._seq = 0
        self._returns.clear()
        self.refused_on_channel = False
        now = self._clock()
        for msg, attempt in unconfirmed:
            self._schedule(msg, attempt, now, after_nack=False)
        return [msg for msg, _ in unconfirmed]

    def sent(self, msg: OutgoingMessage, attempt: int = 1) -> None:
        self._seq += 1
        self._outstanding[self._seq] = (msg, attempt)

    def returned(self, message_id: str, reason: str) -> None:
        self._returns[message_id] += 1
        self._return_text[message_id] = reason

    def confirm(self, delivery_tag: int, *, multiple: bool, acked: bool) -> None:
        done: list[tuple[OutgoingMessage, int]] = []
        if multiple:
            while self._outstanding and next(iter(self._outstanding)) <= delivery_tag:
                done.append(self._outstanding.popitem(last=False)[1])
        elif delivery_tag in self._outstanding:
            done.append(self._outstanding.pop(delivery_tag))
        for msg, attempt in done:
            if self._returns.get(msg.message_id):
                self._returns[msg.message_id] -= 1
                self.result.returned.append((msg, self._return_text.get(msg.message_id, "NO_ROUTE")))
            elif acked:
                self.result.confirmed += 1
            else:
                self.refused_on_channel = True
                if attempt < self.max_attempts:
                    self._schedule(msg, attempt + 1, self._clock() + resend_delay(attempt), after_nack=True)
                else:
                    self.result.nacked.append(msg)

    # ---- sending again ---------------------------------------------------------------------------

    def _schedule(self, msg: OutgoingMessage, attempt: int, due: float, *, after_nack: bool) -> None:
        heapq.heappush(self._again, _SendAgain(due, next(self._order), msg, attempt, after_nack))

    def take_due(self, now: float) -> tuple[OutgoingMessage, int] | None:
        """The next message due to be published again by `now`, with the attempt it will be, or None."""
        if not self._again or self._again[0].due > now:
            return None
        entry = heapq.heappop(self._again)
        self.result.resent += entry.after_nack
        return entry.msg, entry.attempt

    def next_due(self) -> float | None:
        """When the earliest message to publish again is due (the tracker's clock), None if there is none."""
        return self._again[0].due if self._again else None

    @property
    def waiting(self) -> int:
        """Messages waiting to be published again."""
        return len(self._again)

    @property
    def refused_waiting(self) -> int:
        """Of those, the ones the broker refused (the others were unconfirmed on a lost channel)."""
        return sum(entry.after_nack for entry in self._again)
