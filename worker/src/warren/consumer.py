"""The worker: pika SelectConnection consumer with handlers in a bounded thread pool.

Shape follows pika's examples/asynchronous_consumer_example.py (connection -> channel -> qos -> consume,
reconnect on close, consumer-cancel handling, stop = cancel then close). Differences that matter:

* handlers run in a bounded pool of threads (`warren.pool`), never on the I/O loop, so heartbeats keep
  flowing; results come back through ``ioloop.add_callback_threadsafe`` and every channel operation
  happens on the loop thread;
* the channel is in confirm mode: a retry or dead-letter republish is acknowledged to the consumed queue
  only after the broker confirms the republish (at least once, nothing lost);
* acks are coalesced: the completed prefix of deliveries is acked with one ``multiple`` ack, stragglers
  individually, so a slow message never holds back the acks of faster ones;
* one IOLoop serves every connection, so results that finish during a reconnect are dropped by channel
  generation (the broker redelivers those messages) instead of being lost in a dead loop.
"""

from __future__ import annotations

import logging
import signal
import time
from collections import OrderedDict, deque
from collections.abc import Mapping
from types import FrameType, MappingProxyType
from typing import Any

import pika
import pika.exceptions as pex
from pika.adapters.select_connection import IOLoop

from warren import tutorial
from warren.config import HandlerSpec, WorkerConfig
from warren.connection import Endpoints, connection_parameters, describe
from warren.decoding import check_required, decode_body
from warren.disconnects import failure_reason
from warren.handlers import InvalidMessage, Message, required_fields
from warren.logs import FieldLine, flush_logs, write_line
from warren.metrics import Metrics
from warren.notify import Notifier
from warren.outcome_levels import OUTCOME_LEVELS
from warren.pool import HandlerPool
from warren.retry import (
    REASON_EXHAUSTED,
    REASON_INVALID,
    REASON_UNHANDLED,
    Action,
    attempt_of,
    dead_letter_headers,
    decide_failure,
    error_line,
    expiration_ms,
    origin,
    retry_headers,
)
from warren.routing import Router
from warren.summary import Summary

log = logging.getLogger("warren.worker")
outcome_log = logging.getLogger("warren.outcome")

EXIT_OK = 0
EXIT_NOPERM = 77

TICK_SECONDS = 0.2
STATUS_EVERY_SECONDS = 5.0

_AUTH_ERRORS = (pex.AuthenticationError, pex.ProbableAuthenticationError, pex.ProbableAccessDeniedError)
_PERMISSION_CODES = (403, 530)  # ACCESS_REFUSED, NOT_ALLOWED (vhost)


class Delivery:
    """One unacknowledged delivery on the current channel."""

    __slots__ = (
        "attempt",
        "body",
        "done",
        "exchange",
        "gen",
        "held",
        "message_id",
        "outcome",
        "props",
        "returned",
        "routing_key",
        "tag",
    )

    def __init__(self, gen: int, tag: int, exchange: str, routing_key: str, props: Any, body: bytes) -> None:
        self.gen = gen
        self.tag = tag
        self.props = props
        self.body = body
        headers = props.headers
        if headers:
            self.attempt = attempt_of(headers)
            self.exchange, self.routing_key = origin(headers, exchange, routing_key)
        else:  # first delivery of a message without headers: the common case, kept cheap
            self.attempt, self.exchange, self.routing_key = 1, exchange, routing_key
        self.message_id: str | None = props.message_id
        self.done = False  # ready to be acked
        self.held = False  # republish was unroutable: keep unacked until the channel goes away
        self.returned = False
        self.outcome: Outcome | None = None


class Outcome:
    """How a delivery ended (a plain slotted class: built once per message on the hot path)."""

    __slots__ = ("action", "delay", "duration", "error", "reason")

    def __init__(
        self,
        action: Action,
        reason: str | None = None,
        error: str | None = None,
        delay: float | None = None,
        duration: float | None = None,
    ) -> None:
        self.action = action
        self.reason = reason
        self.error = error
        self.delay = delay
        self.duration = duration


# The members as module globals for the per-message code: `Action.ACK` is a class attribute lookup through
# EnumType's metaclass (about 950 instructions each, callgrind), a global is a dict hit.
ACK, RETRY, DEAD_LETTER = Action.ACK, Action.RETRY, Action.DEAD_LETTER
_ACKED_LEVEL = OUTCOME_LEVELS[ACK]

# Shared by every Message delivered without headers: read-only, so no handler can change another's.
_NO_HEADERS: Mapping[str, Any] = MappingProxyType({})

_OUTCOME_FIELDS = ("routing_key", "message_id", "attempt", "duration_us")


def _outcome_values(d: Delivery, duration: float | None) -> tuple[Any, ...]:
    """The values of every outcome line's `_OUTCOME_FIELDS`, in order (the handler's run time in µs).

    Whole microseconds: a float in the line (milliseconds to two places, as before) cost about 2,000
    instructions a message to round and print (callgrind), an int a tenth of that.
    """
    us = None if duration is None else int(duration * 1_000_000 + 0.5)
    return (d.routing_key, d.message_id, d.attempt, us)


class Worker:
    def __init__(self, config: WorkerConfig, metrics: Metrics, notifier: Notifier) -> None:
        self.cfg = config
        self.queue = config.consumer.queue
        self.metrics = metrics
        self.notifier = notifier
        # Each route carries its handler's required body fields, looked up once here, not per message.
        self.router: Router[tuple[HandlerSpec, tuple[str, ...]]] = Router(
            (h.pattern, (h, required_fields(h.func))) for h in config.handlers
        )
        self._outcome_lines = {
            a: FieldLine(
                outcome_log,
                f"message {a.value}",
                {"outcome": a.value, "queue": self.queue},
                _OUTCOME_FIELDS,
                OUTCOME_LEVELS[a],
            )
            for a in Action
        }
        # Logging hooks (docs/operations.md, "Logs"): the summary line and the tutorial lines' budget.
        self.summary = Summary(metrics, self.queue, config.log_summary_interval)
        tutorial.configure(config.log_tutorial_rate)
        self._disconnect = ""  # why the last connection failed or was lost, for the reconnect line
        self.endpoints = Endpoints(config.broker.endpoints)
        self.pool = HandlerPool(config.consumer.concurrency, self._run_handler, "warren-handler")
        self.ioloop = IOLoop()

        self.exit_status: int | None = None
        self.abandoned_work = False  # drain timed out with handlers still running

        self._stop_flag = False  # set by the signal handler; read by the tick
        self._stopping = False
        self._drain_deadline = 0.0
        self._closing = False  # we asked for the connection to close
        self._connection: Any = None
        self._url = ""
        self._channel: Any = None
        self._consumer_tag: str | None = None
        self._gen = 0
        self._ready_sent = False

        self._unacked: OrderedDict[int, Delivery] = OrderedDict()
        self._ack_ready: list[int] = []
        self._confirms: OrderedDict[int, Delivery] = OrderedDict()
        self._publish_seq = 0

        # Handler results for the loop, (delivery, action, handler error, handler seconds, rendered outcome
        # line for an ack): appended by pool threads, taken by _on_results. No lock: deque appends and pops
        # are atomic, and the wake-up flag is reset before the results are taken (see _on_results).
        self._results: deque[tuple[Delivery, Action, str | None, float, str | None]] = deque()
        self._wake_pending = False

        self._next_status = 0.0
        self._next_watchdog = 0.0

    # ---- lifecycle -------------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        # Only a flag: a signal can interrupt the loop anywhere, so the tick acts on it.
        if not self._stop_flag:
            log.info("received %s, shutting down", signal.Signals(signum).name)
        self._stop_flag = True

    def request_stop(self) -> None:
        """Thread-safe: ask the worker to drain and exit (used by tests and embedders)."""
        self._stop_flag = True
        self.ioloop.add_callback_threadsafe(lambda: None)

    def run(self) -> int:
        """Consume until stopped; returns the process exit status."""
        self.pool.start()
        self.ioloop.call_later(TICK_SECONDS, self._tick)
        try:
            while not self._stop_flag and self.exit_status is None:
                self._connect()
                self.ioloop.start()
                if self._stop_flag or self.exit_status is not None:
                    break
                delay = self.endpoints.failed()
                # One line per attempt, saying it all (pika's own error lines are kept out: logs.quiet_pika).
                log.warning(
                    "%s; next attempt in %.1fs to %s (%d consecutive failures)",
                    self._disconnect or f"disconnected from {describe(self._url)}",
                    delay,
                    describe(self.endpoints.upcoming),
                    self.endpoints.failures,
                )
                self._status(f"reconnecting in {delay:.0f}s")
                self._sleep(delay)
        finally:
            self._shutdown_pool()
            self.notifier.close()
            self.summary.final()
        return EXIT_OK if self.exit_status is None else self.exit_status

    def _sleep(self, seconds: float) -> None:
        """Backoff wait that still honours signals and keeps the systemd watchdog fed."""
        deadline = time.monotonic() + seconds
        while not self._stop_flag and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, TICK_SECONDS))
            self._maybe_watchdog()
        if self._stop_flag and not self._stopping:
            self._stopping = True
            self.notifier.stopping()

    def _shutdown_pool(self) -> None:
        busy = [d for d in self._unacked.values() if not d.done and not d.held]
        if self.abandoned_work or busy:
            # Handlers still running belong to a channel that is gone; the broker redelivers their
            # messages. Don't wait for them (a hung handler must not block exit).
            self.abandoned_work = True
            self.pool.shutdown(wait=False)
        else:
            self.pool.shutdown(wait=True)

    def _connect(self) -> None:
        self._url = self.endpoints.next_url()
        self._closing = False
        self._disconnect = ""
        log.debug("connecting to %s vhost %s", describe(self._url), self.cfg.broker.vhost)
        self._connection = pika.SelectConnection(
            parameters=connection_parameters(self._url, self.cfg.broker),
            on_open_callback=self._on_connection_open,
            on_open_error_callback=self._on_connection_open_error,
            on_close_callback=self._on_connection_closed,
            custom_ioloop=self.ioloop,
        )

    def _on_connection_open(self, connection: Any) -> None:
        log.info("connected to %s", describe(self._url))
        connection.channel(on_open_callback=self._on_channel_open)

    def _on_connection_open_error(self, _connection: Any, err: BaseException) -> None:
        if self._is_permission_error(err):
            log.error(
                "broker %s refused user %r on vhost %r: %s",
                describe(self._url),
                self.cfg.broker.username,
                self.cfg.broker.vhost,
                err,
            )
            self.exit_status = EXIT_NOPERM
        else:  # logged by run() with the next attempt
            self._disconnect = f"cannot connect to {describe(self._url)}: {failure_reason(err)}"
        self.ioloop.stop()

    @staticmethod
    def _is_permission_error(err: BaseException) -> bool:
        if isinstance(err, _AUTH_ERRORS):
            return True
        return isinstance(err, pex.ConnectionClosedByBroker) and err.reply_code in _PERMISSION_CODES

    def _on_connection_closed(self, _connection: Any, reason: BaseException) -> None:
        self._forget_channel()
        if not self._closing:  # logged by run() with the next attempt
            self._disconnect = f"connection to {describe(self._url)} lost: {failure_reason(reason)}"
        self.ioloop.stop()

    def _forget_channel(self) -> None:
        in_flight = len(self._unacked)
        if in_flight and not self._stopping:
            log.warning("%d unacknowledged messages will be redelivered by the broker", in_flight)
        self._channel = None
        self._consumer_tag = None
        self._gen += 1  # results still running for the old channel are dropped when they arrive
        self._unacked.clear()
        self._ack_ready.clear()
        self._confirms.clear()

    def _close_connection(self) -> None:
        self._closing = True
        conn = self._connection
        if conn is None or conn.is_closed:
            self.ioloop.stop()
        elif not conn.is_closing:
            conn.close()

    # ---- channel setup ---------------------------------------------------------------------------

    def _on_channel_open(self, channel: Any) -> None:
        self._channel = channel
        self._gen += 1
        self._publish_seq = 0
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_cancel_callback(self._on_consumer_cancelled)
        channel.add_on_return_callback(self._on_return)
        channel.confirm_delivery(self._on_confirm, callback=self._on_confirm_ok)

    def _on_confirm_ok(self, _frame: Any) -> None:
        self._channel.basic_qos(prefetch_count=self.cfg.consumer.prefetch, callback=self._on_qos_ok)

    def _on_qos_ok(self, _frame: Any) -> None:
        if self._stopping:
            self._close_connection()
            return
        self._consumer_tag = self._channel.basic_consume(
            self.queue, self._on_message, callback=self._on_consume_ok
        )

    def _on_consume_ok(self, _frame: Any) -> None:
        self.endpoints.succeeded()
        log.info(
            "consuming %s (prefetch %d, concurrency %d)",
            self.queue,
            self.cfg.consumer.prefetch,
            self.cfg.consumer.concurrency,
        )
        if not self._ready_sent:
            self._ready_sent = self.notifier.ready(self._status_text())
        self._status()

    def _on_channel_closed(self, channel: Any, reason: BaseException) -> None:
        if self._channel is not channel:
            return
        self._forget_channel()
        conn = self._connection
        if conn is None or conn.is_closing or conn.is_closed:
            return  # the connection is going away; _on_connection_closed says why
        if isinstance(reason, pex.ChannelClosedByBroker):
            if reason.reply_code in _PERMISSION_CODES:
                log.error("broker refused access to queue %r: %s", self.queue, reason.reply_text)
                self.exit_status = EXIT_NOPERM
            else:
                log.error("broker closed the channel: %s %s", reason.reply_code, reason.reply_text)
        elif isinstance(reason, pex.ChannelClosedByClient):
            log.debug("channel closed by us: %s", reason)
        elif not self._closing:
            log.warning("channel closed: %s", reason)
        # A fresh connection gives a clean slate (and a backoff if the cause persists).
        self._close_connection()

    def _on_consumer_cancelled(self, frame: Any) -> None:
        log.warning(
            "broker cancelled the consumer on %s (queue deleted or its node went away); reconnecting",
            self.queue,
        )
        self._consumer_tag = None
        if self._channel is not None and self._channel.is_open:
            self._channel.close()

    # ---- deliveries ------------------------------------------------------------------------------

    def _on_message(self, _channel: Any, deliver: Any, props: Any, body: bytes) -> None:
        d = Delivery(self._gen, deliver.delivery_tag, deliver.exchange, deliver.routing_key, props, body)
        self._unacked[d.tag] = d
        route = self.router.lookup(d.routing_key)
        if route is None:
            self._republish_dead(d, REASON_UNHANDLED, f"no handler for routing key {d.routing_key!r}", None)
            return
        spec, required = route.target
        try:
            payload = decode_body(body, props.content_type, props.content_encoding)
            if required:
                check_required(payload, required)
        except InvalidMessage as exc:
            self._republish_dead(d, REASON_INVALID, error_line(exc), None)
            return
        except Exception as exc:  # escaping, it would end the connection again on every redelivery
            log.exception("decoding message %s failed unexpectedly; dead-lettering it", d.message_id)
            self._republish_dead(d, REASON_INVALID, error_line(exc), None)
            return
        # Positional, in field order: eight keywords cost twice the call (~3,600 instructions).
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

    def _run_handler(self, d: Delivery, spec: HandlerSpec, message: Message) -> None:
        """Pool thread: run the handler, then hand the result to the I/O loop."""
        action, error = ACK, None
        start = time.perf_counter()
        try:
            spec.func(message)
        except InvalidMessage as exc:
            action, error = DEAD_LETTER, error_line(exc)
        except BaseException as exc:  # any handler failure is a retry, never a lost message
            action, error = RETRY, error_line(exc)
        duration = time.perf_counter() - start
        acked_line = None
        if action is ACK and outcome_log.isEnabledFor(_ACKED_LEVEL):
            # Rendered here, next to the handler call, rather than in the loop's result batch: measured
            # about 10 % less CPU per message for the whole worker. The loop writes the line only when it
            # queues the ack (a result for a channel that is gone is dropped together with its line).
            acked_line = self._outcome_lines[ACK].render(_outcome_values(d, duration))
        self._results.append((d, action, error, duration, acked_line))
        if not self._wake_pending:  # one wake-up per batch of results, not one per message
            self._wake_pending = True
            self.ioloop.add_callback_threadsafe(self._on_results)

    def _on_results(self) -> None:
        # Reset first, then take: a result appended after this either is taken below or, seeing the flag
        # down, wakes the loop again. A result whose thread saw the flag still up was appended before it.
        self._wake_pending = False
        results = self._results
        batch = [results.popleft() for _ in range(len(results))]
        durations: list[float] = []
        acked_lines: list[str] = []
        ack_ready = self._ack_ready
        gen = self._gen if self._channel is not None else None
        for d, action, error, duration, acked_line in batch:
            durations.append(duration)
            if d.gen != gen:
                continue  # its channel is gone; the broker redelivers the message
            if acked_line is not None:
                # Acked with its line rendered (DEBUG): the whole batch's lines, counts
                # and latencies are handed on together below, not through three calls per message.
                d.done = True
                ack_ready.append(d.tag)
                acked_lines.append(acked_line)
                continue
            if action is ACK:
                d.outcome = Outcome(ACK, duration=duration)
                self._mark_done(d)
                continue
            self.metrics.record_failure()
            if action is DEAD_LETTER:
                self._republish_dead(d, REASON_INVALID, error, duration)
                continue
            decision = decide_failure(d.attempt, self.cfg.retry.max_attempts, self.cfg.retry.backoff)
            if decision.action is RETRY:
                assert decision.next_attempt is not None and decision.delay is not None
                self._republish_retry(d, decision.next_attempt, decision.delay, error, duration)
            else:
                self._republish_dead(d, REASON_EXHAUSTED, error, duration)
        self.metrics.observe_handler(durations)
        if acked_lines:
            self.metrics.record_outcome(ACK, len(acked_lines))
            write_line("".join(acked_lines))
        self._flush_acks()

    # ---- republish with confirms -----------------------------------------------------------------

    def _properties(self, d: Delivery, headers: dict[str, Any], expiration: str | None) -> Any:
        p = d.props
        # user_id is dropped on purpose: the broker rejects a user_id that is not the publishing user.
        return pika.BasicProperties(
            content_type=p.content_type,
            content_encoding=p.content_encoding,
            headers=headers,
            delivery_mode=2,
            priority=p.priority,
            correlation_id=p.correlation_id,
            reply_to=p.reply_to,
            expiration=expiration,
            message_id=p.message_id,
            timestamp=p.timestamp,
            type=p.type,
            app_id=p.app_id,
        )

    def _republish_retry(
        self, d: Delivery, next_attempt: int, delay: float, error: str | None, duration: float
    ) -> None:
        headers = retry_headers(
            d.props.headers,
            exchange=d.exchange,
            routing_key=d.routing_key,
            next_attempt=next_attempt,
            error=error or "",
        )
        props = self._properties(d, headers, expiration_ms(delay))
        d.outcome = Outcome(RETRY, error=error, delay=delay, duration=duration)
        self._publish(d, self.cfg.retry.exchange, props)

    def _republish_dead(self, d: Delivery, reason: str, error: str | None, duration: float | None) -> None:
        headers = dead_letter_headers(
            d.props.headers,
            exchange=d.exchange,
            routing_key=d.routing_key,
            queue=self.queue,
            reason=reason,
            error=error or reason,
        )
        d.outcome = Outcome(DEAD_LETTER, reason=reason, error=error, duration=duration)
        self._publish(d, self.cfg.dead_letter_exchange, self._properties(d, headers, None))

    def _publish(self, d: Delivery, exchange: str, props: Any) -> None:
        # Routing key = consumed queue name for both warren.retry and warren.dlx (docs/design.md).
        self._channel.basic_publish(exchange, self.queue, d.body, props, mandatory=True)
        self._publish_seq += 1
        self._confirms[self._publish_seq] = d

    def _on_return(self, _channel: Any, method: Any, _props: Any, _body: bytes) -> None:
        # A return precedes the confirm of the same publish. Routing is the same for every publish to
        # this exchange/key, so every unconfirmed republish to it is affected.
        for d in self._confirms.values():
            if self._target_exchange(d) == method.exchange:
                d.returned = True
        log.error(
            "republish to exchange %r with routing key %r is unroutable (%s %s): is %s.%s declared and "
            "bound? Affected messages stay unacknowledged until the worker reconnects.",
            method.exchange,
            method.routing_key,
            method.reply_code,
            method.reply_text,
            self.queue,
            "retry" if method.exchange == self.cfg.retry.exchange else "dlq",
        )

    def _target_exchange(self, d: Delivery) -> str:
        assert d.outcome is not None
        return self.cfg.retry.exchange if d.outcome.action is RETRY else self.cfg.dead_letter_exchange

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        acked = isinstance(method, pika.spec.Basic.Ack)
        tag = method.delivery_tag
        confirmed: list[Delivery] = []
        if method.multiple:
            while self._confirms and next(iter(self._confirms)) <= tag:
                confirmed.append(self._confirms.popitem(last=False)[1])
        elif tag in self._confirms:
            confirmed.append(self._confirms.pop(tag))
        for d in confirmed:
            if not acked:
                log.warning("broker refused to store a republish (nack); requeueing message %s", d.message_id)
                self._channel.basic_nack(d.tag, requeue=True)
                self._unacked.pop(d.tag, None)
            elif d.returned:
                d.held = True
            else:
                self._mark_done(d)
        self._flush_acks()

    # ---- acks ------------------------------------------------------------------------------------

    def _mark_done(self, d: Delivery) -> None:
        d.done = True
        self._ack_ready.append(d.tag)
        self._log_outcome(d)

    def _flush_acks(self) -> None:
        ready, unacked = self._ack_ready, self._unacked
        if ready and self._channel is not None:
            highest, count = 0, 0
            for tag, d in unacked.items():  # the done prefix, in delivery order
                if not d.done:
                    break
                highest, count = tag, count + 1
            if count:
                for _ in range(count):
                    unacked.popitem(last=False)
                self._channel.basic_ack(highest, multiple=count > 1)
            # Every done delivery still unacked is in `ready`; all were in the prefix unless counts differ.
            if count != len(ready):
                for tag in ready:
                    if tag in unacked:  # done, but behind a slower message: ack on its own
                        self._channel.basic_ack(tag)
                        del unacked[tag]
            ready.clear()
        if self._stopping:
            self._maybe_finish_drain()

    def _log_outcome(self, d: Delivery) -> None:
        o = d.outcome
        assert o is not None
        self.metrics.record_outcome(o.action)
        line = self._outcome_lines[o.action]
        if not line.enabled():
            return
        extra: dict[str, Any] | None = None
        if o.action is not ACK:  # failures say why
            extra = {}
            if o.action is RETRY:
                extra["retry_in_s"] = round(o.delay or 0.0, 3)
            if o.reason:
                extra["reason"] = o.reason
            if o.error:
                extra["error"] = o.error
        line.write(_outcome_values(d, o.duration), extra)

    # ---- shutdown, status, watchdog --------------------------------------------------------------

    def _tick(self) -> None:
        now = time.monotonic()
        if self._stop_flag and not self._stopping:
            self._begin_stop()
        elif self._stopping and not self._closing and now >= self._drain_deadline:
            busy = sum(1 for d in self._unacked.values() if not d.held)
            log.warning(
                "drain timeout (%.0fs): %d messages unfinished; the broker will redeliver them",
                self.cfg.consumer.drain_timeout,
                busy,
            )
            self.abandoned_work = busy > 0
            self._close_connection()
        self._maybe_watchdog()
        self.summary.tick()
        flush_logs()
        if self.notifier.enabled and now >= self._next_status:
            self._status()
        self.ioloop.call_later(TICK_SECONDS, self._tick)

    def _begin_stop(self) -> None:
        self._stopping = True
        self._drain_deadline = time.monotonic() + self.cfg.consumer.drain_timeout
        self.notifier.stopping()
        log.info(
            "stopping: draining %d in-flight messages (timeout %.0fs)",
            len(self._unacked),
            self.cfg.consumer.drain_timeout,
        )
        channel = self._channel
        if channel is not None and channel.is_open and self._consumer_tag is not None:
            # Cancel first so no new deliveries arrive, then finish what we hold.
            channel.basic_cancel(self._consumer_tag, callback=self._on_cancel_ok)
        elif channel is None or not channel.is_open:
            self._close_connection()
        # Channel open but not consuming yet: _on_qos_ok sees _stopping and closes.

    def _on_cancel_ok(self, _frame: Any) -> None:
        self._consumer_tag = None
        self._maybe_finish_drain()

    def _maybe_finish_drain(self) -> None:
        if self._closing or self._consumer_tag is not None:
            return
        if all(d.held for d in self._unacked.values()):
            log.info("drained; closing connection")
            self._close_connection()

    def _status_text(self) -> str:
        c = self.metrics.snapshot()
        return (
            f"{self.queue}: processed={c['processed']} failed={c['failed']} retried={c['retried']} "
            f"dead_lettered={c['dead_lettered']} in_flight={len(self._unacked)}"
        )

    def _status(self, prefix: str = "") -> None:
        if self.notifier.enabled:
            self._next_status = time.monotonic() + STATUS_EVERY_SECONDS
            self.notifier.status(f"{prefix}; {self._status_text()}" if prefix else self._status_text())

    def _maybe_watchdog(self) -> None:
        interval = self.notifier.watchdog_interval
        if interval is not None and time.monotonic() >= self._next_watchdog:
            self._next_watchdog = time.monotonic() + interval
            self.notifier.watchdog()
