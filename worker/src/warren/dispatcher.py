"""From a delivery to a handler run, and from its result to an ack, a retry or a dead letter.

Handlers run in a bounded pool of threads (`warren.pool`), never on the I/O loop, so heartbeats keep
flowing. Their results come back in one batch per wake-up of the loop (`wake`, pika's thread-safe
callback), and every channel operation happens on the loop thread. A retry or dead letter is acked only
once the broker confirmed its republish (the session's confirms): at least once, nothing lost.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from functools import partial
from types import MappingProxyType
from typing import Any

from warren import tutorial
from warren.config import HandlerSpec, WorkerConfig
from warren.decoding import check_required, decode_body
from warren.handlers import InvalidMessage, Message, required_fields
from warren.outcomes import ACK, ACKED_LEVEL, DEAD_LETTER, RETRY, Outcome, OutcomeLog, outcome_log
from warren.pool import HandlerPool
from warren.properties import republish_properties
from warren.retry import (
    REASON_INVALID,
    REASON_UNHANDLED,
    Action,
    dead_letter_headers,
    decide_failure,
    error_line,
    expiration_ms,
    retry_headers,
)
from warren.routing import Router
from warren.session import Delivery, Session

log = logging.getLogger("warren.worker")

# Shared by every Message delivered without headers: read-only, so no handler can change another's.
_NO_HEADERS: Mapping[str, Any] = MappingProxyType({})

# A handler's result on its way to the loop (`run_handler` -> `on_results`): (delivery, action, handler
# error, handler seconds, acked line: rendered ahead, "" when none is wanted, None when the result is not an
# ack or its line must go through logging).
Result = tuple[Delivery, Action, str | None, float, str | None]


class Dispatcher:
    """Runs the configured handlers on the current session's deliveries and settles their results.

    `wake(callback)` must run `callback` on the I/O loop thread (thread-safe); `settled()` is called on the
    loop after every batch of acks, so the worker can tell when a drain has finished.
    """

    def __init__(
        self,
        config: WorkerConfig,
        outcomes: OutcomeLog,
        wake: Callable[[Callable[[], None]], None],
        settled: Callable[[], None],
    ) -> None:
        self.queue = config.consumer.queue
        self.retry = config.retry
        self.dead_letter_exchange = config.dead_letter_exchange
        self.outcomes = outcomes
        # Each route carries its handler's required body fields, looked up once here, not per message.
        self.router: Router[tuple[HandlerSpec, tuple[str, ...]]] = Router(
            (h.pattern, (h, required_fields(h.func))) for h in config.handlers
        )
        self.pool = HandlerPool(
            config.consumer.concurrency, self.run_handler, "warren-handler", partial(wake, self.on_results)
        )
        self.session: Session | None = None  # the open channel's; results of any other are stale
        tutorial.configure(config.log_tutorial_rate)  # the built-in handlers' lines a second
        self._settled = settled

    def shutdown(self, abandon: bool) -> bool:
        """Stop the handler threads; returns whether work is abandoned: `abandon`, or handlers still
        running for a channel that is gone (the broker redelivers their messages; a hung handler must
        not block exit, so they are not waited for)."""
        session = self.session
        abandon = abandon or (session is not None and session.running() > 0)
        self.pool.shutdown(wait=not abandon)
        return abandon

    # ---- delivery -> handler ---------------------------------------------------------------------

    def on_message(self, _channel: Any, deliver: Any, props: Any, body: bytes) -> None:
        """pika's consumer callback: route and decode the delivery, then hand it to a handler thread."""
        session = self.session
        assert session is not None
        d = session.receive(deliver, props, body)
        route = self.router.lookup(d.routing_key)
        if route is None:
            self._dead_letter(d, REASON_UNHANDLED, f"no handler for routing key {d.routing_key!r}", None)
            return
        spec, required = route.target
        try:
            payload = decode_body(body, props.content_type, props.content_encoding)
            if required:
                check_required(payload, required)
        except InvalidMessage as exc:
            self._dead_letter(d, REASON_INVALID, error_line(exc), None)
            return
        except Exception as exc:  # escaping, it would end the connection again on every redelivery
            log.exception("decoding message %s failed unexpectedly; dead-lettering it", d.message_id)
            self._dead_letter(d, REASON_INVALID, error_line(exc), None)
            return
        # Positional, in field order: keywords cost twice the call.
        message = Message(
            payload,
            d.routing_key,
            d.exchange,
            self.queue,
            d.message_id,
            d.attempt,
            bool(deliver.redelivered),
            props.headers or _NO_HEADERS,
        )
        self.pool.submit((d, spec, message))

    def run_handler(self, d: Delivery, spec: HandlerSpec, message: Message) -> Result:
        """Pool thread: run the handler; the pool hands its result to `on_results` on the I/O loop."""
        action, error = ACK, None
        start = time.perf_counter()
        try:
            spec.func(message)
        except InvalidMessage as exc:
            action, error = DEAD_LETTER, error_line(exc)
        except BaseException as exc:  # any handler failure is a retry, never a lost message
            action, error = RETRY, error_line(exc)
        duration = time.perf_counter() - start
        # Written by the loop only when it queues the ack: a result for a channel that is gone is dropped
        # together with its line.
        acked_line = None
        if action is ACK:
            acked_line = (
                self.outcomes.render_acked(d, duration) if outcome_log.isEnabledFor(ACKED_LEVEL) else ""
            )
        return (d, action, error, duration, acked_line)

    # ---- result -> ack, retry or dead letter -----------------------------------------------------

    def on_results(self) -> None:
        """Loop thread: settle every handler result handed over since the last call."""
        batch: list[Result] = self.pool.take()
        session = self.session
        durations: list[float] = []
        acked: list[Delivery] = []
        acked_lines: list[str] = []
        recorded = 0  # of `acked`, those counted one by one
        for d, action, error, duration, acked_line in batch:
            durations.append(duration)
            if d.session is not session:
                continue  # its channel is gone; the broker redelivers the message
            if acked_line is not None:
                # Acked with its line rendered (DEBUG) or without one (INFO, the production case): the whole
                # batch's lines, counts and acks are handed on together below, not through calls per message.
                acked.append(d)
                if acked_line:
                    acked_lines.append(acked_line)
                continue
            if action is ACK:  # its line must go through logging (a handler listens on the logger)
                d.outcome = Outcome(ACK, duration=duration)
                acked.append(d)
                recorded += 1
                self.outcomes.record(d)
                continue
            self.outcomes.handler_failed()
            if action is DEAD_LETTER:
                self._dead_letter(d, REASON_INVALID, error, duration)
                continue
            decision = decide_failure(d.attempt, self.retry.max_attempts, self.retry.backoff)
            if decision.action is RETRY:
                assert decision.next_attempt is not None and decision.delay is not None
                self._retry(d, decision.next_attempt, decision.delay, error, duration)
            else:
                assert decision.reason is not None
                self._dead_letter(d, decision.reason, error, duration)
        self.outcomes.handlers_ran(durations)
        if session is not None:
            session.done(acked)
            self.outcomes.acked(len(acked) - recorded, acked_lines)
            self._flush()

    def _flush(self) -> None:
        assert self.session is not None
        self.session.flush_acks()
        self._settled()

    def _retry(
        self, d: Delivery, next_attempt: int, delay: float, error: str | None, duration: float
    ) -> None:
        headers = retry_headers(
            d.props.headers,
            exchange=d.exchange,
            routing_key=d.routing_key,
            next_attempt=next_attempt,
            error=error or "",
        )
        d.outcome = Outcome(RETRY, error=error, delay=delay, duration=duration)
        d.session.publish(
            d, self.retry.exchange, republish_properties(d.props, headers, expiration_ms(delay))
        )

    def _dead_letter(self, d: Delivery, reason: str, error: str | None, duration: float | None) -> None:
        headers = dead_letter_headers(
            d.props.headers,
            exchange=d.exchange,
            routing_key=d.routing_key,
            queue=self.queue,
            reason=reason,
            error=error or reason,
        )
        d.outcome = Outcome(DEAD_LETTER, reason=reason, error=error, duration=duration)
        d.session.publish(d, self.dead_letter_exchange, republish_properties(d.props, headers))

    # ---- the broker's answers to republishes -----------------------------------------------------

    def on_return(self, _channel: Any, method: Any, _props: Any, _body: bytes) -> None:
        """pika's return callback: a republish matched no queue."""
        assert self.session is not None
        self.session.returned(method.exchange)
        log.error(
            "republish to exchange %r with routing key %r is unroutable (%s %s): is %s.%s declared and "
            "bound? Affected messages stay unacknowledged until the worker reconnects.",
            method.exchange,
            method.routing_key,
            method.reply_code,
            method.reply_text,
            self.queue,
            "retry" if method.exchange == self.retry.exchange else "dlq",
        )

    def on_confirm(self, frame: Any) -> None:
        """pika's confirm callback: ack the originals of the republishes the broker stored."""
        assert self.session is not None
        for d in self.session.confirmed(frame):
            self.outcomes.record(d)
        self._flush()
