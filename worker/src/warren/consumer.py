"""The worker: the connection's lifecycle around a `Dispatcher`, from start to drained exit.

Shape follows pika's examples/asynchronous_consumer_example.py: one callback per protocol step
(connection -> channel -> confirm mode -> qos -> consume), reconnect on close, consumer-cancel handling,
stop = cancel, then close. Each open channel gets a `Session` (its deliveries, acks and confirms); the
`Dispatcher` runs handlers on its deliveries and settles the results; an `OutcomeLog` writes the outcome
lines and counts, which a `Summary` puts in the journal once a period. One IOLoop serves every connection,
so results that finish during a reconnect belong to a session that is gone and are dropped (the broker
redelivers those messages). docs/design.md draws it.
"""

from __future__ import annotations

import enum
import logging
import signal
import time
from types import FrameType
from typing import Any

import pika
import pika.exceptions as pex
from pika.adapters.select_connection import IOLoop

from warren.broker_config import BrokerConfig
from warren.config import WorkerConfig
from warren.connection import (
    PERMISSION_CODES,
    Endpoints,
    blocked_reason,
    connection_parameters,
    describe,
    failure_reason,
    refuses_access,
)
from warren.dispatcher import Dispatcher
from warren.exits import EX_CERTIFICATE, EX_NOPERM, EX_OK
from warren.logs import flush_logs
from warren.metrics import Metrics
from warren.notify import Notifier, WorkerStatus
from warren.outcomes import OutcomeLog
from warren.session import Session
from warren.summary import Summary
from warren.tls import CertificateRefusals

log = logging.getLogger("warren.worker")

TICK_SECONDS = 0.2


class State(enum.Enum):
    RUNNING = "running"  # consuming, or connecting to consume
    STOP_REQUESTED = "stop requested"  # by a signal or `request_stop`; the next tick begins the drain
    DRAINING = "draining"  # consumer cancelled (or being cancelled): finishing what is in flight
    CLOSING = "closing"  # drained or out of time: closing the connection, then exit


class Worker:
    def __init__(self, config: WorkerConfig, metrics: Metrics, notifier: Notifier) -> None:
        self.cfg = config
        self.queue = config.consumer.queue
        self.metrics = metrics
        self.notifier = notifier
        self.ioloop = IOLoop()
        self.dispatcher = Dispatcher(
            config, OutcomeLog(self.queue, metrics), self.ioloop.add_callback_threadsafe, self._on_acks_sent
        )
        self.endpoints = Endpoints(config.broker.endpoints)
        self.summary = Summary(metrics, self.queue, config.log_summary_interval)
        self.status = WorkerStatus(notifier, self.queue, metrics.snapshot, self._in_flight)

        self.state = State.RUNNING
        self.exit_status: int | None = None
        self.abandoned_work = False  # drain timed out with handlers still running

        self._connection: Any = None
        self._url = ""
        self._disconnect = ""  # why the current connection failed or ended, for the reconnect line
        self._consumer_tag: str | None = None
        self._drain_deadline = 0.0
        self._certificate_refusals = CertificateRefusals(len(self.endpoints.urls), log)

    @property
    def session(self) -> Session | None:
        """The open channel's session, if one is open."""
        return self.dispatcher.session

    def _in_flight(self) -> int:
        return 0 if self.session is None else self.session.in_flight

    # ---- run -------------------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        # Only a state change: a signal can interrupt the loop anywhere, so the tick acts on it.
        if self.state is State.RUNNING:
            log.info("received %s, shutting down", signal.Signals(signum).name)
            self.state = State.STOP_REQUESTED

    def request_stop(self) -> None:
        """Thread-safe: ask the worker to drain and exit (used by tests and embedders)."""
        if self.state is State.RUNNING:
            self.state = State.STOP_REQUESTED
        self.ioloop.add_callback_threadsafe(lambda: None)

    def run(self) -> int:
        """Consume until stopped; returns the process exit status."""
        self.dispatcher.pool.start()
        self.ioloop.call_later(TICK_SECONDS, self._tick)
        try:
            while self.state is State.RUNNING and self.exit_status is None:
                self._connect()
                self.ioloop.start()
                if self.state is not State.RUNNING or self.exit_status is not None:
                    break
                delay = self.endpoints.failed()
                # One line per attempt that says it all; pika's own error lines stay out (logs.quiet_pika).
                log.warning("%s", self.endpoints.retry_line(self._disconnect, delay))
                self.status.report(f"reconnecting in {delay:.0f}s")
                self._sleep(delay)
        finally:
            self.abandoned_work = self.dispatcher.shutdown(self.abandoned_work)
            self.notifier.close()
            self.summary.final()
        return EX_OK if self.exit_status is None else self.exit_status

    def _sleep(self, seconds: float) -> None:
        """Backoff wait that still honours signals and keeps the systemd watchdog fed."""
        deadline = time.monotonic() + seconds
        while self.state is State.RUNNING and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, TICK_SECONDS))
            self.notifier.watchdog_if_due()
        if self.state is State.STOP_REQUESTED:  # nothing in flight: no connection to drain
            self.state = State.CLOSING
            self.notifier.stopping()

    # ---- connection ------------------------------------------------------------------------------

    def _connect(self) -> None:
        self._url = self.endpoints.next_url()
        self._disconnect = f"disconnected from {describe(self._url)}"  # unless a callback knows better
        log.debug("connecting to %s vhost %s", describe(self._url), self.cfg.broker.vhost)
        self._connection = pika.SelectConnection(
            parameters=_parameters(self._url, self.cfg.broker),
            on_open_callback=self._on_connection_open,
            on_open_error_callback=self._on_connection_open_error,
            on_close_callback=self._on_connection_closed,
            custom_ioloop=self.ioloop,
        )
        url = describe(self._url)
        self._connection.add_on_connection_blocked_callback(
            lambda _conn, frame: self.status.blocked(blocked_reason(frame.method), url)
        )
        self._connection.add_on_connection_unblocked_callback(
            lambda _conn, _frame: self.status.unblocked(url)
        )

    def _on_connection_open(self, connection: Any) -> None:
        self._certificate_refusals.connected()
        log.info("connected to %s", describe(self._url))
        connection.channel(on_open_callback=self._on_channel_open)

    def _on_connection_open_error(self, _connection: Any, err: BaseException) -> None:
        reason = _open_error(err, self._url, self.cfg.broker)
        if reason is None:
            self.exit_status = EX_NOPERM
        else:
            self._disconnect = reason  # logged by run() with the next attempt
        if self._certificate_refusals.every_endpoint_refused(err, describe(self._url)):
            self.exit_status = EX_CERTIFICATE
        self.ioloop.stop()

    def _on_connection_closed(self, _connection: Any, reason: BaseException) -> None:
        self._forget_session()
        if not isinstance(reason, pex.ConnectionClosedByClient):  # logged by run() with the next attempt
            self._disconnect = f"connection to {describe(self._url)} lost: {failure_reason(reason)}"
        self.ioloop.stop()

    def _close_connection(self) -> None:
        if self.state is State.DRAINING:
            self.state = State.CLOSING
        conn = self._connection
        if conn is None or conn.is_closed:
            self.ioloop.stop()
        elif not conn.is_closing:
            conn.close()

    # ---- channel: open, confirm mode, qos, consume -----------------------------------------------

    def _on_channel_open(self, channel: Any) -> None:
        self.dispatcher.session = Session(channel, self.queue)
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_cancel_callback(self._on_consumer_cancelled)
        channel.add_on_return_callback(self.dispatcher.on_return)
        channel.confirm_delivery(self.dispatcher.on_confirm, callback=self._on_confirm_mode_ok)

    def _on_confirm_mode_ok(self, _frame: Any) -> None:
        assert self.session is not None
        self.session.channel.basic_qos(prefetch_count=self.cfg.consumer.prefetch, callback=self._on_qos_ok)

    def _on_qos_ok(self, _frame: Any) -> None:
        if self.state in (State.DRAINING, State.CLOSING):
            self._close_connection()
            return
        assert self.session is not None
        self._consumer_tag = self.session.channel.basic_consume(
            self.queue, self.dispatcher.on_message, callback=self._on_consume_ok
        )

    def _on_consume_ok(self, _frame: Any) -> None:
        self.endpoints.succeeded()
        log.info(
            "consuming %s (prefetch %d, concurrency %d)",
            self.queue,
            self.cfg.consumer.prefetch,
            self.cfg.consumer.concurrency,
        )
        self.status.consuming()

    def _on_channel_closed(self, channel: Any, reason: BaseException) -> None:
        session = self.session
        if session is None or session.channel is not channel:
            return
        self._forget_session()
        conn = self._connection
        if conn is None or conn.is_closing or conn.is_closed:
            return  # the connection is going away; _on_connection_closed says why
        if _log_channel_closed(reason, self.queue) == EX_NOPERM:
            self.exit_status = EX_NOPERM
        # A fresh connection gives a clean slate (and a backoff if the cause persists).
        self._close_connection()

    def _on_consumer_cancelled(self, _frame: Any) -> None:
        log.warning(
            "broker cancelled the consumer on %s (queue deleted or its node went away); reconnecting",
            self.queue,
        )
        self._consumer_tag = None
        session = self.session
        if session is not None and session.channel.is_open:
            session.channel.close()

    def _forget_session(self) -> None:
        session = self.session
        if session is None:
            return
        self.dispatcher.session = None  # results still running for it are dropped when they arrive
        self._consumer_tag = None
        in_flight = session.close()
        if in_flight and self.state in (State.RUNNING, State.STOP_REQUESTED):
            log.warning("%d unacknowledged messages will be redelivered by the broker", in_flight)

    # ---- stop: cancel, drain, close --------------------------------------------------------------

    def _begin_stop(self) -> None:
        self.state = State.DRAINING
        self._drain_deadline = time.monotonic() + self.cfg.consumer.drain_timeout
        self.notifier.stopping()
        session = self.session
        log.info(
            "stopping: draining %d in-flight messages (timeout %.0fs)",
            0 if session is None else session.in_flight,
            self.cfg.consumer.drain_timeout,
        )
        channel = None if session is None else session.channel
        if channel is not None and channel.is_open and self._consumer_tag is not None:
            # Cancel first so no new deliveries arrive, then finish what we hold.
            channel.basic_cancel(self._consumer_tag, callback=self._on_cancel_ok)
        elif channel is None or not channel.is_open:
            self._close_connection()
        # Channel open but not consuming yet: _on_qos_ok sees the drain and closes.

    def _on_cancel_ok(self, _frame: Any) -> None:
        self._consumer_tag = None
        self._maybe_finish_drain()

    def _on_acks_sent(self) -> None:
        if self.state is State.DRAINING:
            self._maybe_finish_drain()

    def _maybe_finish_drain(self) -> None:
        if self.state is not State.DRAINING or self._consumer_tag is not None:
            return
        session = self.session
        if session is None or session.settled():
            log.info("drained; closing connection")
            self._close_connection()

    # ---- tick: stop requests, drain deadline, watchdog, status -----------------------------------

    def _tick(self) -> None:
        now = time.monotonic()
        if self.state is State.STOP_REQUESTED:
            self._begin_stop()
        elif self.state is State.DRAINING and now >= self._drain_deadline:
            session = self.session
            unfinished = 0 if session is None else session.unfinished()
            log.warning(
                "drain timeout (%.0fs): %d messages unfinished; the broker will redeliver them",
                self.cfg.consumer.drain_timeout,
                unfinished,
            )
            self.abandoned_work = unfinished > 0
            self._close_connection()
        session = self.session
        if session is not None and session.channel.is_open:
            session.requeue_due(now)
        self.notifier.watchdog_if_due()
        self.summary.tick()
        flush_logs()
        self.status.report_if_due()
        self.ioloop.call_later(TICK_SECONDS, self._tick)


def _parameters(url: str, broker: BrokerConfig) -> pika.ConnectionParameters:
    return connection_parameters(
        url,
        vhost=broker.vhost,
        username=broker.username,
        password=broker.password,
        timeout=broker.connection_timeout,
        heartbeat=broker.heartbeat,
        name="warren-worker",
        tls_context=broker.tls_context() if url.startswith("amqps:") else None,
    )


def _open_error(err: BaseException, url: str, broker: BrokerConfig) -> str | None:
    """Why connecting failed, for the reconnect line; None when the broker refused the credentials or the
    vhost, which is logged here: only an operator can fix that."""
    if refuses_access(err):
        log.error(
            "broker %s refused user %r on vhost %r: %s", describe(url), broker.username, broker.vhost, err
        )
        return None
    return f"cannot connect to {describe(url)}: {failure_reason(err)}"


def _log_channel_closed(reason: BaseException, queue: str) -> int | None:
    """Say why the broker or we closed the channel; EX_NOPERM when the broker refused access to `queue`."""
    if isinstance(reason, pex.ChannelClosedByBroker):
        if reason.reply_code in PERMISSION_CODES:
            log.error("broker refused access to queue %r: %s", queue, reason.reply_text)
            return EX_NOPERM
        log.error("broker closed the channel: %s %s", reason.reply_code, reason.reply_text)
    elif isinstance(reason, pex.ChannelClosedByClient):
        log.debug("channel closed by us: %s", reason)
    else:
        log.warning("channel closed: %s", reason)
    return None
