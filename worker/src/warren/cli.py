"""Console scripts: warren-worker and warren-publish."""

from __future__ import annotations

import argparse
import dataclasses
import gc
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from warren import __version__
from warren.config import ConfigError, load_config, parse_listen
from warren.decoding import parse_json
from warren.logs import setup_logging
from warren.publisher import (
    DEFAULT_URL,
    DEFAULT_WINDOW,
    AccessRefused,
    OutgoingMessage,
    Publisher,
    PublishError,
    connection_parameters,
    replay_dead_letters,
)

EX_OK = 0
EX_FAILURE = 1
EX_USAGE = 2  # argparse's own status; also invalid JSON input
EX_UNROUTABLE = 3
EX_UNCONFIRMED = 4
EX_UNAVAILABLE = 69
EX_NOPERM = 77
EX_CONFIG = 78


# ---- warren-worker -------------------------------------------------------------------------------

# Young-generation collections every 10,000 net allocations of container objects instead of Python's 700.
GC_YOUNG_THRESHOLD = 10_000


def tune_gc() -> None:
    """Set the cyclic garbage collector for a worker that streams messages through itself.

    Every collection walks the young objects still alive, and with a prefetch of hundreds those are
    mostly deliveries in flight, not garbage (messages are freed by reference counting). At Python's
    threshold of 700 a run of 50,000 no-op messages spent about 3 % of the worker's CPU in 200 such
    collections; at 10,000 it spent a fifth of that (timed with gc.callbacks). The objects alive at
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


# ---- warren-publish ------------------------------------------------------------------------------

ENVELOPE_KEYS = frozenset({"exchange", "routing_key", "body", "message_id", "headers"})


class InputError(ValueError):
    pass


def parse_line(line: str, default_exchange: str, default_routing_key: str | None) -> OutgoingMessage:
    """One JSON-lines record -> message.

    An object whose keys are all envelope keys and include "body" is an envelope
    ({"routing_key": ..., "body": {...}}, optionally "exchange", "message_id", "headers");
    any other JSON object is a body published with --exchange/--routing-key.
    """
    try:
        value = parse_json(line)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if not isinstance(value, dict):
        raise InputError(f"expected a JSON object, got {type(value).__name__}")
    if "body" in value and set(value) <= ENVELOPE_KEYS:
        body = value["body"]
        exchange = value.get("exchange", default_exchange)
        routing_key = value.get("routing_key", default_routing_key)
        message_id = value.get("message_id")
        headers = value.get("headers")
        if not isinstance(body, dict):
            raise InputError("envelope body must be a JSON object")
        if not isinstance(exchange, str) or (routing_key is not None and not isinstance(routing_key, str)):
            raise InputError("envelope exchange and routing_key must be strings")
        if message_id is not None and not isinstance(message_id, str):
            raise InputError("envelope message_id must be a string")
        if headers is not None and not isinstance(headers, dict):
            raise InputError("envelope headers must be an object")
    else:
        body, exchange, routing_key, message_id, headers = (
            value,
            default_exchange,
            default_routing_key,
            None,
            None,
        )
    if routing_key is None:
        raise InputError('no routing key: give --routing-key or a "routing_key" in the envelope')
    try:
        return OutgoingMessage.json(exchange, routing_key, body, message_id=message_id, headers=headers)
    except ValueError as exc:  # a body without a JSON form, headers without an AMQP one
        raise InputError(str(exc)) from None


def _read_password(args: argparse.Namespace) -> str:
    if args.password_file:
        try:
            return Path(args.password_file).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise InputError(f"cannot read --password-file {args.password_file}: {exc.strerror}") from None
    env = os.environ.get("WARREN_PASSWORD")
    if env is not None:
        return env
    if args.username == "guest":
        return "guest"  # RabbitMQ's loopback-only development account
    raise InputError("no password: give --password-file or set WARREN_PASSWORD")


def _publish_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="warren-publish",
        description="Publish persistent JSON messages with confirms, or replay a dead-letter queue.",
        epilog="Exit: 0 all confirmed; 2 usage or invalid input; 3 unroutable; 4 nacked/unconfirmed; "
        "69 broker unreachable; 77 access refused.",
    )
    p.add_argument("body", nargs="?", help="JSON object to publish")
    p.add_argument(
        "--url", default=DEFAULT_URL, help=f"broker URL without credentials (default {DEFAULT_URL})"
    )
    p.add_argument("--vhost", default="/", help="virtual host (default /)")
    p.add_argument("--username", default=os.environ.get("WARREN_USERNAME", "guest"))
    p.add_argument(
        "--password-file", metavar="PATH", help="file holding the password (else $WARREN_PASSWORD)"
    )
    p.add_argument("--exchange", default="", help="exchange (default: the default exchange)")
    p.add_argument("--routing-key", help="routing key (required unless every input line carries one)")
    p.add_argument("--message-id", help="message_id for a single message (default: a UUID4)")
    p.add_argument("--file", metavar="PATH", help="JSON lines to publish ('-' = stdin)")
    p.add_argument(
        "--window",
        type=int,
        default=DEFAULT_WINDOW,
        help=f"max unconfirmed messages in flight (default {DEFAULT_WINDOW})",
    )
    p.add_argument("--timeout", type=float, default=30.0, help="seconds without progress before giving up")
    p.add_argument("--replay-dlq", metavar="QUEUE", help="move messages from QUEUE back to their origin")
    p.add_argument("--limit", type=int, help="with --replay-dlq: replay at most N messages")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


def publish_main(argv: Sequence[str] | None = None) -> int:
    parser = _publish_parser()
    args = parser.parse_args(argv)
    modes = sum(x is not None for x in (args.body, args.file, args.replay_dlq))
    if modes != 1:
        parser.error("give exactly one of: a JSON body, --file, --replay-dlq")
    if args.limit is not None and (args.replay_dlq is None or args.limit < 0):
        parser.error("--limit takes a non-negative number and needs --replay-dlq")
    if args.window < 1:
        parser.error("--window must be >= 1")

    def err(text: str) -> None:
        print(f"warren-publish: {text}", file=sys.stderr, flush=True)

    try:
        password = _read_password(args)
        if args.replay_dlq is not None:
            return _replay(args, password, err)
        if args.body is not None:
            if args.routing_key is None:
                raise InputError("--routing-key is required with a JSON body")
            msg = parse_line(args.body, args.exchange, args.routing_key)
            if args.message_id:
                msg = OutgoingMessage(msg.exchange, msg.routing_key, msg.body, args.message_id)
            return _publish(args, password, iter([msg]), [], err)
        errors: list[str] = []
        # Bytes, decoded line by line: a line that is not UTF-8 is reported like any other bad line.
        stream: IO[bytes] = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")  # noqa: SIM115
        with stream:
            return _publish(args, password, _lines(stream, args, errors), errors, err)
    except InputError as exc:
        err(str(exc))
        return EX_USAGE
    except OSError as exc:
        err(f"{args.file}: {exc.strerror or exc}")
        return EX_USAGE


def _lines(stream: IO[bytes], args: argparse.Namespace, errors: list[str]) -> Iterator[OutgoingMessage]:
    for lineno, raw in enumerate(stream, 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            errors.append(f"line {lineno}: not UTF-8: {exc.reason} at byte {exc.start}")
            continue
        if not line.strip():
            continue
        try:
            yield parse_line(line, args.exchange, args.routing_key)
        except InputError as exc:
            errors.append(f"line {lineno}: {exc}")


def _publish(
    args: argparse.Namespace, password: str, messages: Iterator[OutgoingMessage], errors: list[str], err: Any
) -> int:
    try:
        with Publisher(
            args.url,
            username=args.username,
            password=password,
            vhost=args.vhost,
            window=args.window,
            timeout=args.timeout,
        ) as publisher:
            result = publisher.publish_many(messages)
    except AccessRefused as exc:
        err(str(exc))
        return EX_NOPERM
    except PublishError as exc:
        err(str(exc))
        return EX_UNAVAILABLE if "confirmed" not in str(exc) else EX_UNCONFIRMED
    for line in errors:
        err(f"not published: {line}")
    for msg, reason in result.returned:
        err(
            f"unroutable: exchange {msg.exchange!r} routing key {msg.routing_key!r} matches no queue "
            f"({reason}); message_id={msg.message_id}"
        )
    for msg in result.nacked:
        err(f"broker refused (nack) message_id={msg.message_id}")
    total = result.confirmed + len(result.returned) + len(result.nacked)
    if total != 1 or not result.ok or errors:
        print(
            f"warren-publish: {result.confirmed} confirmed, {len(result.returned)} unroutable, "
            f"{len(result.nacked)} nacked, {len(errors)} invalid input lines",
            file=sys.stderr if not result.ok or errors else sys.stdout,
        )
    if result.returned:
        return EX_UNROUTABLE
    if result.nacked:
        return EX_UNCONFIRMED
    return EX_USAGE if errors else EX_OK


def _replay(args: argparse.Namespace, password: str, err: Any) -> int:
    try:
        params = connection_parameters(args.url, args.username, password, args.vhost)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    try:
        result = replay_dead_letters(params, args.replay_dlq, args.limit)
    except AccessRefused as exc:
        err(str(exc))
        return EX_NOPERM
    except PublishError as exc:
        err(str(exc))
        return EX_UNAVAILABLE
    for line in result.skipped:
        err(f"left in {args.replay_dlq}: {line}")
    print(f"warren-publish: replayed {result.replayed} from {args.replay_dlq}, {len(result.skipped)} left")
    return EX_OK if not result.skipped else EX_UNROUTABLE
