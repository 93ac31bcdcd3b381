"""The built-in handlers: the tutorials' workers and their input checks, and what the learning path publishes
(strict only where the path is strict)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from warren.handlers import InvalidMessage, Message, job, order_event, required_fields, whatsapp_notification


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


@pytest.mark.parametrize(
    "routing_key",
    [
        "order.created",
        "order.updated",
        "order.completed",
        "order.cancelled",
    ],
)
def test_order_event_without_event_field_takes_its_type_from_the_routing_key(routing_key: str) -> None:
    # The path's first publish: payload='{"order_id":123}' with routing_key="order.created".
    order_event(msg({"order_id": 123}, routing_key))


def test_order_event_types_stay_strict() -> None:
    assert required_fields(order_event) == ("order_id",)
    with pytest.raises(InvalidMessage, match=r"unknown order event type 'order.shipped'"):
        order_event(msg({"order_id": 1}, "order.shipped"))
    with pytest.raises(InvalidMessage, match=r"unknown order event type 'order.lost'"):
        order_event(msg({"order_id": 1, "event": "order.lost"}, "order.created"))


@pytest.mark.parametrize("body", [{"job": "test1"}, {"job": "hello1"}, {}, {"task": "resize", "seconds": 0}])
def test_job_takes_any_json_object(caplog: pytest.LogCaptureFixture, body: dict[str, Any]) -> None:
    assert required_fields(job) == ()
    with caplog.at_level(logging.INFO):
        job(msg(body, "jobs"))
    assert caplog.messages == [f"Received job {body}", f"Done job {body}"]


def test_job_simulates_work_for_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr("warren.handlers.time.sleep", slept.append)
    job(msg({"job": "slow", "seconds": 1.5}, "jobs"))
    job(msg({"job": "fast"}, "jobs"))
    assert slept == [1.5]


@pytest.mark.parametrize("seconds", [-1, True, "2", 301, None])
def test_job_rejects_a_bad_seconds(seconds: Any) -> None:
    with pytest.raises(InvalidMessage, match="seconds must be a number between 0 and 300"):
        job(msg({"job": "j", "seconds": seconds}, "jobs"))
