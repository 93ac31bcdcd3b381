"""Handler contract and the built-in handlers that reproduce the tutorials' workers.

A handler is any importable callable ``handler(message: Message) -> None``:

* return normally: the message is acknowledged;
* raise :class:`InvalidMessage`: the message can never succeed; it is dead-lettered at once;
* raise anything else: the message is retried with backoff, then dead-lettered.

Delivery is at least once, so handlers must be idempotent; key on ``message.message_id``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from warren import tutorial

# The tutorial lines below go through tutorial.wanted(): logged for a bounded number of messages a second.
log = tutorial.log

F = TypeVar("F", bound=Callable[..., Any])

REQUIRED_FIELDS_ATTR = "__warren_required_fields__"


class InvalidMessage(Exception):
    """Permanent failure: the message is malformed for this handler; retrying cannot help."""


# Not frozen: a frozen dataclass sets each field through object.__setattr__, about 10,000 instructions a
# message (4 % of the worker's whole per-message cost, callgrind). The worker never reads a Message back
# after the handler returns, so a handler changing its own copy changes nothing else.
@dataclass(slots=True)
class Message:
    body: dict[str, Any]
    routing_key: str  # the key it was first published with (survives retries)
    exchange: str  # the exchange it was first published to
    queue: str
    message_id: str | None
    attempt: int  # 1 on the first delivery
    redelivered: bool
    headers: Mapping[str, Any] = field(default_factory=dict)


def requires(*fields: str) -> Callable[[F], F]:
    """Declare top-level body fields a handler needs; messages without them are dead-lettered unhandled."""

    def mark(func: F) -> F:
        setattr(func, REQUIRED_FIELDS_ATTR, tuple(fields))
        return func

    return mark


def required_fields(handler: Callable[..., Any]) -> tuple[str, ...]:
    value = getattr(handler, REQUIRED_FIELDS_ATTR, ())
    return tuple(value)


# The learning path's order events; it names order.cancelled as one more its worker processes.
ORDER_EVENT_TYPES = ("order.created", "order.updated", "order.completed", "order.cancelled")


@requires("order_id")
def order_event(message: Message) -> None:
    """Order events from the topic exchange ``events`` (tutorial: order event consumer)."""
    show = tutorial.wanted()
    if show:
        log.info("Received event %s", message.body)
    event_type = message.body.get("event", message.routing_key)
    if event_type not in ORDER_EVENT_TYPES:
        raise InvalidMessage(f"unknown order event type {event_type!r}")
    if show:
        log.info("Processing event type %s", event_type)


MAX_JOB_SECONDS = 300.0


def job(message: Message) -> None:
    """Work-queue job (the learning path's worker.py): any JSON object, e.g. ``{"job": "test1"}``.

    An optional ``seconds`` (0..300) simulates the work, like the path's ``time.sleep(2)`` and the tutorial's
    dots; without it the job is done at once.
    """
    seconds = message.body.get("seconds", 0)
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not 0 <= seconds <= MAX_JOB_SECONDS
    ):
        raise InvalidMessage(f"seconds must be a number between 0 and {MAX_JOB_SECONDS:g}")
    show = tutorial.wanted()
    if show:
        log.info("Received job %s", message.body)
    if seconds:
        time.sleep(seconds)
    if show:
        log.info("Done job %s", message.body)


_PHONE = re.compile(r"^\+[1-9][0-9]{6,14}$")  # E.164


@requires("phone", "message")
def whatsapp_notification(message: Message) -> None:
    """WhatsApp notification (tutorial: notification worker); the send is simulated."""
    phone, text = message.body["phone"], message.body["message"]
    if not isinstance(phone, str) or not _PHONE.match(phone):
        raise InvalidMessage("phone must be an E.164 number such as +911234567890")
    if not isinstance(text, str) or not text.strip():
        raise InvalidMessage("message must be a non-empty string")
    if tutorial.wanted():
        log.info("Sending WhatsApp message to %s: %s", phone, text)
        log.info("WhatsApp message to %s sent (simulated)", phone)
