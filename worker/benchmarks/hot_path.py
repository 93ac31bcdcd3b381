#!/usr/bin/env python3
"""Warren's own per-message cost, without broker, socket or pika frame decoding.

Deliveries go through the worker's real per-message path (the dispatcher's header and body decoding,
routing, handler call, outcome line, counters, and its session's ack bookkeeping) against a channel
stand-in that only counts acks; every 25 deliveries (about one 4 KiB socket read) the results are
processed, as the I/O loop does. Handlers run on this thread: the pool hand-off is part of throughput.py,
which measures the whole worker.

Why it exists: on a small VM the broker's and the machine's noise move throughput.py's figures by
+-30 %, which hides a 10 % change in Warren's own code; the minimum printed here moved by under 10 %
between runs on the same code. Prints microseconds of CPU per message (min and median of --runs runs).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pika

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # bench_handlers, throughput

from throughput import write_config  # noqa: E402 - after the sys.path entry
from warren.config import load_config  # noqa: E402
from warren.dispatcher import Dispatcher  # noqa: E402
from warren.logs import flush_logs, setup_logging  # noqa: E402
from warren.metrics import Metrics  # noqa: E402
from warren.outcomes import OutcomeLog  # noqa: E402
from warren.session import Session  # noqa: E402

BODY = b'{"order_id":12345,"event":"order.created"}'
READ_BATCH = 25


class CountingChannel:
    """Stands in for the pika channel: the hot path only acks."""

    is_open = True

    def __init__(self) -> None:
        self.acks = 0

    def basic_ack(self, delivery_tag: int, multiple: bool = False) -> None:
        self.acks += 1


class Deliver:
    __slots__ = ("delivery_tag", "exchange", "redelivered", "routing_key")

    def __init__(self, tag: int) -> None:
        self.delivery_tag = tag
        self.exchange = "events"
        self.routing_key = "order.created"
        self.redelivered = False


class InlinePool:
    """Stands in for the handler pool: the handlers of one read's deliveries run on this thread."""

    def __init__(self, run_handler: Any) -> None:
        self.run_handler = run_handler
        self.pending: list[tuple[Any, ...]] = []
        self.submit = self.pending.append
        self.results: list[Any] = []

    def run_pending(self) -> None:
        run_handler = self.run_handler
        self.results = [run_handler(*item) for item in self.pending]
        self.pending.clear()

    def take(self) -> list[Any]:
        results, self.results = self.results, []
        return results


def make_dispatcher(tmp: Path, log_level: str) -> Dispatcher:
    config = load_config(write_config(tmp, "/", "order.events", "noop", 1000, 8, log_level))
    setup_logging(config.log_format, config.log_level)
    queue = config.consumer.queue
    dispatcher = Dispatcher(config, OutcomeLog(queue, Metrics(queue)), lambda _callback: None, lambda: None)
    dispatcher.pool = InlinePool(dispatcher.run_handler)  # type: ignore[assignment]
    dispatcher.session = Session(CountingChannel(), queue)
    return dispatcher


def run(dispatcher: Dispatcher, first_tag: int, n: int) -> float:
    """CPU seconds for n deliveries."""
    props = pika.BasicProperties(
        content_type="application/json",
        delivery_mode=2,
        message_id="3f2a9c1e-1b4d-4c8e-9f00-aa11bb22cc33",
        timestamp=int(time.time()),
        app_id="warren-publish",
    )
    deliveries = [Deliver(first_tag + i) for i in range(n)]
    on_message: Any = dispatcher.on_message
    pool: Any = dispatcher.pool

    def handle_pending() -> None:
        pool.run_pending()
        dispatcher.on_results()

    start = time.process_time()
    for i, deliver in enumerate(deliveries, 1):
        on_message(None, deliver, props, BODY)
        if i % READ_BATCH == 0:
            handle_pending()
    handle_pending()
    elapsed = time.process_time() - start
    assert dispatcher.session is not None and dispatcher.session.in_flight == 0, "every delivery is acked"
    flush_logs()
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=50_000, help="deliveries per run (default 50000)")
    ap.add_argument("--runs", type=int, default=7, help="runs; min and median are printed (default 7)")
    ap.add_argument("--log-level", default="INFO", help="DEBUG: a line per acked message")
    args = ap.parse_args()

    real_stdout = sys.stdout
    with tempfile.TemporaryDirectory(prefix="warren-hot-path-") as tmpdir, open(os.devnull, "w") as devnull:
        sys.stdout = devnull  # the outcome lines are written (that cost counts), then discarded
        try:
            dispatcher = make_dispatcher(Path(tmpdir), args.log_level)
            run(dispatcher, 1, 1000)  # warm-up: imports, caches
            seconds = [run(dispatcher, (r + 1) * 10_000_000, args.messages) for r in range(args.runs)]
            per_message = [s / args.messages * 1e6 for s in seconds]
        finally:
            sys.stdout = real_stdout
    print(
        f"warren per-message path ({args.log_level}): min {min(per_message):.1f} us, "
        f"median {statistics.median(per_message):.1f} us of CPU per message "
        f"({args.runs} runs x {args.messages} deliveries)"
    )


if __name__ == "__main__":
    main()
