"""The tutorials' topology exists exactly, and messages route through it as the tutorials show."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from conftest import get_messages, publish, queue_depths, rabbitmqadmin

WORK_QUEUES = ["order.events", "jobs", "whatsapp.notifications"]

EXPECTED_EXCHANGES = {
    "events": "topic",
    "notifications": "direct",
    "warren.retry": "direct",
    "warren.dlx": "direct",
}

# (source exchange, destination queue, routing key); "" is the default exchange's implicit binding.
EXPECTED_BINDINGS = {
    ("events", "order.events", "order.*"),
    ("notifications", "whatsapp.notifications", "whatsapp"),
    *{("warren.retry", f"{q}.retry", q) for q in WORK_QUEUES},
    *{("warren.dlx", f"{q}.dlq", q) for q in WORK_QUEUES},
}


def test_exchanges(host: Any) -> None:
    exchanges = {
        e["name"]: e
        for e in rabbitmqadmin(host, "list", "exchanges")
        if e["vhost"] == "/" and e["name"] and not e["name"].startswith("amq.")
    }
    assert {name: e["type"] for name, e in exchanges.items()} == EXPECTED_EXCHANGES
    assert all(e["durable"] and not e["auto_delete"] for e in exchanges.values())


def test_queues(host: Any) -> None:
    queues = {q["name"]: q for q in rabbitmqadmin(host, "list", "queues") if q["vhost"] == "/"}
    expected = set(WORK_QUEUES) | {f"{q}.retry" for q in WORK_QUEUES} | {f"{q}.dlq" for q in WORK_QUEUES}
    assert set(queues) == expected
    for name, queue in queues.items():
        assert queue["durable"], name
        assert not queue["auto_delete"], name
        # The broker's classic_queue.default_version (rabbitmq role), not an argument of the topology.
        assert "x-queue-version" not in queue["arguments"], name
        assert queue["backing_queue_status"]["version"] == 2, name
        # No arguments: a plain `declare queue name=... durable=true` is equivalent (test_learning_path.py).
        assert queue["arguments"] == {}, name
    # Dead-lettering comes from one generated policy per work and retry queue.
    for name in WORK_QUEUES:
        assert queues[name]["policy"] == f"warren.{name}"
        assert queues[name]["effective_policy_definition"] == {
            "dead-letter-exchange": "warren.dlx",
            "dead-letter-routing-key": name,
        }
        assert queues[f"{name}.retry"]["policy"] == f"warren.{name}.retry"
        assert queues[f"{name}.retry"]["effective_policy_definition"] == {
            "dead-letter-exchange": "",
            "dead-letter-routing-key": name,
        }
        assert not queues[f"{name}.dlq"].get("policy"), name


def test_bindings(host: Any) -> None:
    bindings = {
        (b["source"], b["destination"], b["routing_key"])
        for b in rabbitmqadmin(host, "list", "bindings")
        if b["vhost"] == "/" and b["source"] and b["destination_type"] == "queue"
    }
    assert bindings == EXPECTED_BINDINGS


def test_definitions_file_matches_broker(host: Any) -> None:
    definitions = host.file("/etc/rabbitmq/definitions.json")
    assert definitions.mode == 0o640
    assert '"order.events"' in definitions.content_string


@pytest.mark.parametrize(
    ("exchange", "routing_key", "queue", "payload"),
    [
        ("events", "order.created", "order.events", {"order_id": 123, "event": "order.created"}),
        ("events", "order.completed", "order.events", {"order_id": 124, "event": "order.completed"}),
        ("notifications", "whatsapp", "whatsapp.notifications", {"phone": "+911234567890", "message": "hi"}),
        ("", "jobs", "jobs", {"job": "test1"}),
    ],
)
def test_persistent_message_lands_in_its_queue(
    host: Any, workers_paused: None, exchange: str, routing_key: str, queue: str, payload: dict[str, Any]
) -> None:
    payload = {**payload, "test_marker": str(uuid.uuid4())}
    assert publish(host, exchange or "amq.default", routing_key, payload) == "Message published"
    messages = get_messages(host, queue, count=100)
    mine = [m for m in messages if payload["test_marker"] in m["payload"]]
    assert len(mine) == 1, messages
    assert mine[0]["properties"]["delivery_mode"] == 2
    assert mine[0]["routing_key"] == routing_key


def test_message_matching_no_binding_lands_nowhere(host: Any, workers_paused: None) -> None:
    # Counts from rabbitmqctl: the management API's are statistics sampled every few seconds.
    before = queue_depths(host)
    assert publish(host, "events", "invoice.created", {"invoice_id": 1}) == "Message published but NOT routed"
    assert queue_depths(host) == before
