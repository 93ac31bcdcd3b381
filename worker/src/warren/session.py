"""One channel's deliveries: unacked messages, coalesced acks, republishes awaiting the broker's confirm.

A `Session` lives exactly as long as its channel. Delivery tags and publish sequence numbers count per
channel, so everything that refers to them lives here and goes away with it: a handler result for a
delivery whose session is no longer the current one is stale (its channel is gone, the broker redelivers
the message) and is dropped. Every method runs on the I/O loop thread.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import pika

from warren.retry import attempt_of, origin

if TYPE_CHECKING:
    from warren.outcomes import Outcome

log = logging.getLogger("warren.worker")

# A republish the broker refused (a full retry queue with reject-publish, a broker that cannot store) is
# requeued only after this long: at once, the message would come straight back, fail again and be refused
# again, hundreds of times a second, with no attempt counted.
REFUSED_REQUEUE_SECONDS = 5.0


class Delivery:
    """One unacknowledged delivery of a session."""

    __slots__ = (
        "attempt",
        "body",
        "done",
        "exchange",
        "held",
        "message_id",
        "outcome",
        "props",
        "returned",
        "routing_key",
        "session",
        "tag",
    )

    def __init__(self, session: Session, deliver: Any, props: Any, body: bytes) -> None:
        self.session = session
        self.tag: int = deliver.delivery_tag
        self.props = props
        self.body = body
        headers = props.headers
        if headers:
            self.attempt = attempt_of(headers)
            self.exchange, self.routing_key = origin(headers, deliver.exchange, deliver.routing_key)
        else:  # first delivery of a message without headers: the common case, kept cheap
            self.attempt, self.exchange, self.routing_key = 1, deliver.exchange, deliver.routing_key
        self.message_id: str | None = props.message_id
        self.done = False  # ready to be acked
        self.held = False  # republish unroutable or refused: not acked (see Session.confirmed)
        self.returned = False
        self.outcome: Outcome | None = None


class Session:
    """The deliveries, acks and confirmed republishes of one open channel (in confirm mode)."""

    def __init__(self, channel: Any, queue: str) -> None:
        self.channel = channel
        self.queue = queue
        self._unacked: OrderedDict[int, Delivery] = OrderedDict()  # in delivery order
        self._ack_ready: list[int] = []  # tags done since the last flush
        # Publish sequence number -> (delivery republished, exchange it went to), in publish order.
        self._confirms: OrderedDict[int, tuple[Delivery, str]] = OrderedDict()
        self._publish_seq = 0
        # Delivery tag -> when a held delivery whose republish was refused goes back to its queue.
        self._requeue_at: dict[int, float] = {}

    def receive(self, deliver: Any, props: Any, body: bytes) -> Delivery:
        """Track a new delivery (pika's Basic.Deliver, its properties and body) until it is acked."""
        d = Delivery(self, deliver, props, body)
        self._unacked[d.tag] = d
        return d

    # ---- what the worker asks -------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Deliveries not acked yet, whatever their state."""
        return len(self._unacked)

    def unfinished(self) -> int:
        """Deliveries that still wait for something: a handler, a confirm or an ack (held ones wait for
        nothing: they stay unacked until the channel goes away)."""
        return sum(1 for d in self._unacked.values() if not d.held)

    def running(self) -> int:
        """Deliveries not done: a handler running or waiting for a thread, or a republish unconfirmed."""
        return sum(1 for d in self._unacked.values() if not d.done and not d.held)

    def settled(self) -> bool:
        """Nothing left to finish: every delivery still unacked is held."""
        return all(d.held for d in self._unacked.values())

    def close(self) -> int:
        """The channel is gone: forget everything (the broker redelivers it); returns how many it held."""
        in_flight = len(self._unacked)
        self._unacked.clear()
        self._ack_ready.clear()
        self._confirms.clear()
        self._requeue_at.clear()
        return in_flight

    # ---- acks -----------------------------------------------------------------------------------

    def done(self, deliveries: list[Delivery]) -> None:
        """These deliveries are finished: ack them at the next `flush_acks`."""
        ready = self._ack_ready
        for d in deliveries:
            d.done = True
            ready.append(d.tag)

    def flush_acks(self) -> None:
        """Ack what is done: the done prefix with one `multiple` ack, the others behind it one by one."""
        ready, unacked = self._ack_ready, self._unacked
        if not ready:
            return
        highest, count = 0, 0
        for tag, d in unacked.items():  # the done prefix, in delivery order
            if not d.done:
                break
            highest, count = tag, count + 1
        if count:
            for _ in range(count):
                unacked.popitem(last=False)
            self.channel.basic_ack(highest, multiple=count > 1)
        # Every done delivery still unacked is in `ready`; all were in the prefix unless counts differ.
        if count != len(ready):
            for tag in ready:
                if tag in unacked:  # done, but behind a slower message: ack on its own
                    self.channel.basic_ack(tag)
                    del unacked[tag]
        ready.clear()

    # ---- republishes ----------------------------------------------------------------------------

    def publish(self, d: Delivery, exchange: str, props: Any) -> None:
        """Republish `d` (mandatory) to `exchange`; it is acked once the broker confirms (`confirmed`)."""
        # Routing key = consumed queue name for both warren.retry and warren.dlx (docs/design.md).
        self.channel.basic_publish(exchange, self.queue, d.body, props, mandatory=True)
        self._publish_seq += 1
        self._confirms[self._publish_seq] = (d, exchange)

    def returned(self, exchange: str) -> None:
        """The broker returned a republish to `exchange` as unroutable.

        A return precedes the confirm of the same publish. Routing is the same for every publish to this
        exchange and routing key, so every unconfirmed republish to it is affected.
        """
        for d, target in self._confirms.values():
            if target == exchange:
                d.returned = True

    def confirmed(self, frame: Any) -> list[Delivery]:
        """Settle the republishes a Basic.Ack or Basic.Nack confirms; returns those now done.

        Nacked: the original is held and requeued after REFUSED_REQUEUE_SECONDS (`requeue_due`). Returned
        unroutable: it is held, unacked, until the channel goes.
        """
        method = frame.method
        acked = isinstance(method, pika.spec.Basic.Ack)
        tag = method.delivery_tag
        confirms = self._confirms
        settled: list[Delivery] = []
        if method.multiple:
            while confirms and next(iter(confirms)) <= tag:
                settled.append(confirms.popitem(last=False)[1][0])
        elif tag in confirms:
            settled.append(confirms.pop(tag)[0])
        finished: list[Delivery] = []
        for d in settled:
            if not acked:
                log.warning(
                    "broker refused to store a republish (nack); requeueing message %s in %.0fs",
                    d.message_id,
                    REFUSED_REQUEUE_SECONDS,
                )
                d.held = True
                self._requeue_at[d.tag] = time.monotonic() + REFUSED_REQUEUE_SECONDS
            elif d.returned:
                d.held = True
            else:
                finished.append(d)
        self.done(finished)
        return finished

    def requeue_due(self, now: float) -> None:
        """Requeue the refused deliveries whose wait is over (called from the worker's tick)."""
        if not self._requeue_at:
            return
        for tag, due in list(self._requeue_at.items()):
            if due <= now:
                del self._requeue_at[tag]
                self._unacked.pop(tag)
                self.channel.basic_nack(tag, requeue=True)
