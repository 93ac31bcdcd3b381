"""Retry / dead-letter decisions, backoff with jitter and the x-warren-* headers (pure logic).

Header names and meanings are fixed by docs/design.md ("Headers Warren writes").
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

H_ATTEMPT = "x-warren-attempt"
H_ROUTING_KEY = "x-warren-routing-key"
H_EXCHANGE = "x-warren-exchange"
H_ERROR = "x-warren-error"
H_REASON = "x-warren-reason"
H_ORIGIN_QUEUE = "x-warren-origin-queue"

REASON_INVALID = "invalid-message"
REASON_UNHANDLED = "unhandled-routing-key"
REASON_EXHAUSTED = "retries-exhausted"

MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class Backoff:
    initial: float
    multiplier: float
    maximum: float

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        """Delay before the next try after `failures` consecutive failures (>= 1).

        Capped exponential with "equal jitter": uniformly in [d/2, d], so workers that failed together
        spread out but nobody retries sooner than half the nominal backoff.
        """
        exponent = max(failures, 1) - 1
        # Cap the exponent first so a long outage cannot overflow the float.
        nominal = min(self.maximum, self.initial * self.multiplier ** min(exponent, 64))
        r = (rng or random).random()
        return nominal / 2 + r * nominal / 2


class Action(StrEnum):
    """How a delivery ends; each member is also its outcome name (the `outcome` log field and metric label).

    A str enum, not a plain one: looking a member up in a dict or counting by it then costs no Python-level
    `__hash__` or `.value` call, and that happens for every message.
    """

    ACK = "acked"
    RETRY = "retried"
    DEAD_LETTER = "dead-lettered"


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str | None = None  # dead-letter reason
    next_attempt: int | None = None  # retry: attempt number of the next delivery
    delay: float | None = None  # retry: seconds


def attempt_of(headers: Mapping[str, Any] | None) -> int:
    """Delivery attempt from x-warren-attempt; absent or garbage means first delivery."""
    value = (headers or {}).get(H_ATTEMPT)
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    try:
        attempt = int(value) if value is not None else 1
    except (TypeError, ValueError):
        return 1
    return max(attempt, 1)


def decide_failure(
    attempt: int, max_attempts: int, backoff: Backoff, rng: random.Random | None = None
) -> Decision:
    """A handler raised a transient error on delivery `attempt`: retry or give up."""
    if attempt >= max_attempts:
        return Decision(Action.DEAD_LETTER, reason=REASON_EXHAUSTED)
    return Decision(Action.RETRY, next_attempt=attempt + 1, delay=backoff.delay(attempt, rng))


def error_line(exc: BaseException) -> str:
    """One line, `Type: message`, bounded so a huge exception text cannot bloat headers."""
    text = " ".join(str(exc).split())
    line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return line if len(line) <= MAX_ERROR_CHARS else line[: MAX_ERROR_CHARS - 3] + "..."


def header_text(headers: Mapping[str, Any], name: str) -> str | None:
    """A header's text (AMQP may carry it as bytes), or None when absent or not text."""
    value = headers.get(name)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else None


def origin(headers: Mapping[str, Any] | None, exchange: str, routing_key: str) -> tuple[str, str]:
    """(exchange, routing key) the message was first published with.

    A message that came back from `Q.retry` arrives via the default exchange with routing key `Q`;
    the headers written on the first republish remember the real origin.
    """
    h = headers or {}
    ex = header_text(h, H_EXCHANGE)
    rk = header_text(h, H_ROUTING_KEY)
    if ex is not None and rk is not None:
        return ex, rk
    return exchange, routing_key


def retry_headers(
    headers: Mapping[str, Any] | None, *, exchange: str, routing_key: str, next_attempt: int, error: str
) -> dict[str, Any]:
    out = dict(headers or {})
    out.update({H_ATTEMPT: next_attempt, H_EXCHANGE: exchange, H_ROUTING_KEY: routing_key, H_ERROR: error})
    return out


def dead_letter_headers(
    headers: Mapping[str, Any] | None, *, exchange: str, routing_key: str, queue: str, reason: str, error: str
) -> dict[str, Any]:
    out = dict(headers or {})
    out.update(
        {
            H_EXCHANGE: exchange,
            H_ROUTING_KEY: routing_key,
            H_ORIGIN_QUEUE: queue,
            H_REASON: reason,
            H_ERROR: error,
        }
    )
    return out


def replay_headers(headers: Mapping[str, Any] | None) -> dict[str, Any]:
    """Headers for a message replayed from a DLQ: a fresh start (no attempt count, no broker x-death)."""
    return {k: v for k, v in (headers or {}).items() if not k.startswith("x-warren-") and k != "x-death"}


def expiration_ms(delay: float) -> str:
    """AMQP `expiration` is a string of whole milliseconds; at least 1 so the broker keeps it in Q.retry."""
    return str(max(1, round(delay * 1000)))
