"""DLQ replay: move dead letters back to where they were first published, with confirms."""

from __future__ import annotations

from dataclasses import dataclass, field

import pika
import pika.exceptions as pex

from warren.confirm_channel import publish_error
from warren.connection import PERMISSION_CODES
from warren.outgoing import AccessRefused, CertificateRefused, PublishError
from warren.properties import republish_properties
from warren.retry import H_EXCHANGE, H_ROUTING_KEY, header_text, replay_headers


@dataclass
class ReplayResult:
    replayed: int = 0
    skipped: list[str] = field(default_factory=list)  # one line per message left in the DLQ, with why


def replay_dead_letters(
    params: pika.ConnectionParameters, queue: str, limit: int | None = None
) -> ReplayResult:
    """Move messages from a DLQ back to where they were first published, with confirms.

    Each message is acked in the DLQ only after the broker confirmed its republish. Messages that
    cannot be replayed (no origin headers, unroutable, nacked) are left in the DLQ. Replays at most
    `limit` messages and never more than the DLQ held at the start, so a message that fails again
    and is dead-lettered during the run is not replayed in a loop. Raises AccessRefused when the broker
    refuses the credentials, the vhost, reading the DLQ or writing to a message's origin.
    """
    result = ReplayResult()
    try:
        connection = pika.BlockingConnection(params)
    except (pex.AMQPConnectionError, OSError) as exc:
        # OSError: for some failures (a refused certificate) BlockingConnection raises the socket's own error.
        error = publish_error(exc)  # the publisher's reading: access refused, certificate refused, or other
        if isinstance(error, AccessRefused | CertificateRefused):
            raise error from None
        raise PublishError(f"cannot connect to {params.host}:{params.port}: {error}") from None
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        depth = channel.queue_declare(queue, passive=True).method.message_count
        budget = depth if limit is None else min(limit, depth)
        # Skipped messages stay unacked on this channel (so basic_get moves on) until close requeues them.
        for _ in range(budget):
            method, props, body = channel.basic_get(queue, auto_ack=False)
            if method is None:
                break
            headers = props.headers or {}
            exchange, routing_key = header_text(headers, H_EXCHANGE), header_text(headers, H_ROUTING_KEY)
            if exchange is None or routing_key is None:
                result.skipped.append(
                    f"message_id={props.message_id}: no {H_EXCHANGE}/{H_ROUTING_KEY} headers"
                )
                continue
            out = republish_properties(props, replay_headers(headers))
            try:
                channel.basic_publish(exchange, routing_key, body, out, mandatory=True)
            except pex.UnroutableError:
                result.skipped.append(
                    f"message_id={props.message_id}: unroutable to exchange {exchange!r} key {routing_key!r}"
                )
                continue
            except pex.NackError:
                result.skipped.append(f"message_id={props.message_id}: broker nacked the republish")
                continue
            channel.basic_ack(method.delivery_tag)
            result.replayed += 1
    except pex.ChannelClosedByBroker as exc:
        # The message taken and not acked goes back to the DLQ when the connection closes.
        refused = exc.reply_code in PERMISSION_CODES
        raise (AccessRefused if refused else PublishError)(
            f"{'access refused: ' if refused else ''}replaying {queue!r}: {exc.reply_code} {exc.reply_text} "
            f"({result.replayed} replayed before)"
        ) from None
    finally:
        if connection.is_open:
            connection.close()
    return result
