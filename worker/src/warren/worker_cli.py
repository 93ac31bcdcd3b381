"""warren-worker's command line: load and check a profile, serve metrics, run the worker."""

from __future__ import annotations

import argparse
import dataclasses
import gc
import logging
import os
import sys
from collections.abc import Sequence

from warren import __version__
from warren.config import ConfigError, load_config, parse_listen
from warren.exits import EX_CONFIG, EX_FAILURE, EX_OK
from warren.logs import setup_logging

# Young-generation collections every 10,000 net allocations of container objects instead of Python's 700.
GC_YOUNG_THRESHOLD = 10_000


def tune_gc() -> None:
    """Set the cyclic garbage collector for a worker that streams messages through itself.

    Every collection walks the young objects still alive, and with a prefetch of hundreds those are
    mostly deliveries in flight, not garbage (messages are freed by reference counting), so a higher
    young-generation threshold collects far less often for the same garbage. The objects alive at
    start-up (modules, configuration, handlers) never become garbage: frozen, no collection visits them
    (start-up's own garbage is collected first, or freezing would keep it for good).
    """
    gc.collect()
    gc.freeze()
    _gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, gen1, gen2)


def worker_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="warren-worker", description="Consume one queue per profile.")
    parser.add_argument("--config", required=True, metavar="PATH", help="worker profile (TOML)")
    parser.add_argument("--check", action="store_true", help="validate the profile and exit")
    parser.add_argument(
        "--metrics-listen",
        metavar="HOST:PORT",
        help="serve Prometheus metrics here, overriding the profile's metrics.listen (one port per instance)",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    args = parser.parse_args(argv)

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"warren-worker: {exc}", file=sys.stderr, flush=True)
        return EX_CONFIG
    if args.metrics_listen:
        try:
            config = dataclasses.replace(config, metrics_listen=parse_listen(args.metrics_listen))
        except ValueError as exc:
            print(f"warren-worker: --metrics-listen: {exc}", file=sys.stderr, flush=True)
            return EX_CONFIG
    if args.check:
        print(
            f"warren-worker: {args.config}: OK "
            f"({len(config.handlers)} handlers, queue {config.consumer.queue})"
        )
        return EX_OK

    setup_logging(config.log_format, config.log_level)
    log = logging.getLogger("warren.worker")

    # Imported here so `--check` and config errors stay fast and free of pika/prometheus side effects.
    from warren.consumer import Worker
    from warren.metrics import Metrics
    from warren.notify import Notifier

    metrics = Metrics(config.consumer.queue)
    if config.metrics_listen:
        host, port = config.metrics_listen
        try:
            metrics.serve(host, port)
        except OSError as exc:
            log.error("cannot serve metrics on %s:%d: %s", host, port, exc.strerror or exc)
            return EX_FAILURE
        log.info("metrics on http://%s:%d/metrics", host, port)

    worker = Worker(config, metrics, Notifier())
    worker.install_signal_handlers()
    tune_gc()
    try:
        status = worker.run()
    except Exception:
        log.exception("unexpected error")
        status = EX_FAILURE
    log.info("exiting with status %d", status)
    logging.shutdown()
    if worker.abandoned_work:
        # Handler threads that missed the drain timeout would block interpreter exit; their messages
        # are unacked and the broker redelivers them.
        sys.stdout.flush()
        os._exit(status)
    return status
