"""The built-in handlers: the tutorials' workers and their input checks."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from warren.handlers import InvalidMessage, Message, job, order_event, whatsapp_notification


def msg(body: dict[str, Any], routing_key: str = "order.created") -> Message:
    return Message(body, routing_key, "events", "q", "id-1", 1, False)


def test_order_event_handler_logs_like_the_tutorial(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        order_event(msg({"order_id": 123, "event": "order.created"}))
    assert caplog.messages == [
        "Received event {'order_id': 123, 'event': 'order.created'}",
        "Processing event type order.created",
    ]
    order_event(msg({"order_id": 1}, "order.completed"))  # event type from the routing key
    with pytest.raises(InvalidMessage, match=r"unknown order event type 'order.shipped'"):
        order_event(msg({"order_id": 1}, "order.shipped"))


def test_job_and_whatsapp_validation() -> None:
    job(msg({"task": "t", "seconds": 0}))
    for bad in ({"task": "t", "seconds": -1}, {"task": "t", "seconds": True}, {"task": "t", "seconds": "2"}):
        with pytest.raises(InvalidMessage):
            job(msg(bad))
    whatsapp_notification(msg({"phone": "+911234567890", "message": "hi"}))
    with pytest.raises(InvalidMessage, match=r"E\.164"):
        whatsapp_notification(msg({"phone": "12345", "message": "hi"}))
    with pytest.raises(InvalidMessage, match="non-empty"):
        whatsapp_notification(msg({"phone": "+911234567890", "message": " "}))
