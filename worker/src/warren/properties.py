"""The properties of a received message, copied for republishing it (worker retries and dead letters, DLQ
replay), so both programs keep the same fields."""

from __future__ import annotations

from typing import Any

import pika


def republish_properties(props: Any, headers: dict[str, Any], expiration: str | None = None) -> Any:
    """`props` with new headers and expiration, persistent.

    `user_id` is dropped on purpose: the broker rejects a user_id that is not the publishing user's. An old
    `expiration` is never carried over: it would expire a dead letter or a replayed message.
    """
    return pika.BasicProperties(
        content_type=props.content_type,
        content_encoding=props.content_encoding,
        headers=headers,
        delivery_mode=2,
        priority=props.priority,
        correlation_id=props.correlation_id,
        reply_to=props.reply_to,
        expiration=expiration,
        message_id=props.message_id,
        timestamp=props.timestamp,
        type=props.type,
        app_id=props.app_id,
    )
