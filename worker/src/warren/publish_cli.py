"""warren-publish's command line: publish JSON messages with confirms, or replay a dead-letter queue."""

from __future__ import annotations

import argparse
import logging
import os
import ssl
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from warren import __version__
from warren.connection import connection_parameters
from warren.decoding import parse_json
from warren.exits import (
    EX_CERTIFICATE,
    EX_NOPERM,
    EX_OK,
    EX_UNAVAILABLE,
    EX_UNCONFIRMED,
    EX_UNROUTABLE,
    EX_USAGE,
)
from warren.outgoing import (
    DEFAULT_MAX_ATTEMPTS,
    FIRST_RESEND_DELAY,
    MAX_RESEND_DELAY,
    AccessRefused,
    CertificateRefused,
    OutgoingMessage,
    PublishError,
    Unconfirmed,
)
from warren.publisher import DEFAULT_URL, DEFAULT_WINDOW, Publisher
from warren.replay import replay_dead_letters
from warren.tls import client_context

PROGRAM = "warren-publish"  # also the connection name the management UI shows

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
        epilog="Exit: 0 all confirmed; 2 usage or invalid input; 3 unroutable; 4 nacked --max-attempts "
        "times, or unconfirmed (connection lost and not replaced within --timeout, no confirms within "
        "--timeout, a broker alarm); 69 broker unreachable; 76 TLS certificate refused; 77 access refused.",
    )
    p.add_argument("body", nargs="?", help="JSON object to publish")
    p.add_argument(
        "--url",
        action="append",
        help=f"broker URL without credentials (default {DEFAULT_URL}); repeat it for each node of a cluster: "
        "connecting tries them in turn, a lost connection is replaced on the next that answers",
    )
    p.add_argument("--vhost", default="/", help="virtual host (default /)")
    p.add_argument("--username", default=os.environ.get("WARREN_USERNAME", "guest"))
    p.add_argument(
        "--password-file", metavar="PATH", help="file holding the password (else $WARREN_PASSWORD)"
    )
    p.add_argument(
        "--ca-file",
        metavar="PATH",
        default=os.environ.get("WARREN_CA_FILE"),
        help="CA that signed an amqps:// broker's certificate (else $WARREN_CA_FILE, else the system's)",
    )
    p.add_argument("--cert-file", metavar="PATH", help="client certificate for mutual TLS")
    p.add_argument("--key-file", metavar="PATH", help="its key (default: in --cert-file)")
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
    p.add_argument(
        "--max-attempts",
        type=int,
        default=DEFAULT_MAX_ATTEMPTS,
        metavar="N",
        help="publish a message the broker refuses (nack) again, with the same message_id, on a new "
        f"channel after {FIRST_RESEND_DELAY:g} s, doubling up to {MAX_RESEND_DELAY:g} s, until it was "
        f"published N times (default {DEFAULT_MAX_ATTEMPTS}; 1: never again)",
    )
    p.add_argument("--replay-dlq", metavar="QUEUE", help="move messages from QUEUE back to their origin")
    p.add_argument("--limit", type=int, help="with --replay-dlq: replay at most N messages")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


def publish_main(argv: Sequence[str] | None = None) -> int:
    # pika logs each failed or lost connection as ERROR lines with tracebacks, which Python would print on
    # stderr for want of a handler; the one line this program writes for it says why.
    logging.getLogger("pika").addHandler(logging.NullHandler())
    _say_publisher_notes()
    parser = _publish_parser()
    args = parser.parse_args(argv)
    modes = sum(x is not None for x in (args.body, args.file, args.replay_dlq))
    if modes != 1:
        parser.error("give exactly one of: a JSON body, --file, --replay-dlq")
    if args.limit is not None and (args.replay_dlq is None or args.limit < 0):
        parser.error("--limit takes a non-negative number and needs --replay-dlq")
    if args.window < 1:
        parser.error("--window must be >= 1")
    if args.max_attempts < 1:
        parser.error("--max-attempts must be >= 1")
    if args.replay_dlq is not None and args.url and len(args.url) > 1:
        parser.error("--replay-dlq takes one --url")
    args.url = args.url or [DEFAULT_URL]

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


class _Stderr(logging.Handler):
    """The publisher's notes (a reconnect, a resend after a nack) as this program's own stderr lines."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"{PROGRAM}: {record.getMessage()}", file=sys.stderr, flush=True)


def _say_publisher_notes() -> None:
    publisher_log = logging.getLogger("warren.publisher")
    if not any(isinstance(h, _Stderr) for h in publisher_log.handlers):
        publisher_log.addHandler(_Stderr(logging.INFO))
        publisher_log.setLevel(logging.INFO)


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
        publisher = Publisher(
            args.url,
            username=args.username,
            password=password,
            vhost=args.vhost,
            window=args.window,
            timeout=args.timeout,
            tls_context=_tls_context(args),
            max_attempts=args.max_attempts,
        )
    except ValueError as exc:  # a URL that is not amqp://
        raise InputError(str(exc)) from None
    try:
        with publisher:
            result = publisher.publish_many(messages)
    except PublishError as exc:
        err(str(exc))
        return failure_status(exc)
    if result.reconnects:
        err(
            f"reconnected {result.reconnects} times; {result.republished} messages unconfirmed on a lost "
            "connection were sent again and may arrive twice"
        )
    for line in errors:
        err(f"not published: {line}")
    for msg, reason in result.returned:
        err(
            f"unroutable: exchange {msg.exchange!r} routing key {msg.routing_key!r} matches no queue "
            f"({reason}); message_id={msg.message_id}"
        )
    for msg in result.nacked:
        err(f"broker refused (nack) message_id={msg.message_id} {args.max_attempts} times; not sent again")
    if result.sent != 1 or not result.ok or errors or result.resent:
        print(
            f"warren-publish: {result.sent} sent, {result.confirmed} confirmed, {result.resent} resent, "
            f"{len(result.nacked)} failed, {len(result.returned)} unroutable, "
            f"{len(errors)} invalid input lines",
            file=sys.stderr if not result.ok or errors else sys.stdout,
        )
    if result.returned:
        return EX_UNROUTABLE
    if result.nacked:
        return EX_UNCONFIRMED
    return EX_USAGE if errors else EX_OK


def _replay(args: argparse.Namespace, password: str, err: Any) -> int:
    try:
        params = connection_parameters(
            args.url[0],
            vhost=args.vhost,
            username=args.username,
            password=password,
            timeout=10.0,
            name=PROGRAM,
            tls_context=_tls_context(args),
        )
    except ValueError as exc:
        raise InputError(str(exc)) from None
    try:
        result = replay_dead_letters(params, args.replay_dlq, args.limit)
    except PublishError as exc:
        err(str(exc))
        return failure_status(exc)
    for line in result.skipped:
        err(f"left in {args.replay_dlq}: {line}")
    print(f"warren-publish: replayed {result.replayed} from {args.replay_dlq}, {len(result.skipped)} left")
    return EX_OK if not result.skipped else EX_UNROUTABLE


def _tls_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The context for amqps:// --urls (None when all are amqp://); unreadable files are invalid input."""
    if not any(url.startswith("amqps:") for url in args.url):
        return None
    try:
        return client_context(args.ca_file, args.cert_file, args.key_file)
    except (OSError, ssl.SSLError) as exc:
        files = ", ".join(f for f in (args.ca_file, args.cert_file, args.key_file) if f)
        raise InputError(f"TLS files ({files}) unusable: {getattr(exc, 'strerror', None) or exc}") from None


def failure_status(exc: PublishError) -> int:
    """The exit status of a publish or replay that failed as a whole (the exception's type says why)."""
    if isinstance(exc, AccessRefused):
        return EX_NOPERM
    if isinstance(exc, CertificateRefused):
        return EX_CERTIFICATE
    if isinstance(exc, Unconfirmed):
        return EX_UNCONFIRMED
    return EX_UNAVAILABLE
