"""The tutorials' topology exists exactly; its routing end to end is in test_workers.py (the three use cases)."""

from __future__ import annotations

import json
from typing import Any

from conftest import publish, queue_depths, rabbitmqadmin

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


def test_exchanges_are_exactly_the_topologys_durable_ones(host: Any) -> None:
    exchanges = {
        e["name"]: e
        for e in rabbitmqadmin(host, "list", "exchanges")
        if e["vhost"] == "/" and e["name"] and not e["name"].startswith("amq.")
    }
    assert {name: e["type"] for name, e in exchanges.items()} == EXPECTED_EXCHANGES
    assert all(e["durable"] and not e["auto_delete"] for e in exchanges.values())


def test_queues_are_durable_on_storage_v2_and_dead_letter_through_policies(host: Any) -> None:
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


def test_bindings_are_exactly_the_topologys(host: Any) -> None:
    bindings = {
        (b["source"], b["destination"], b["routing_key"])
        for b in rabbitmqadmin(host, "list", "bindings")
        if b["vhost"] == "/" and b["source"] and b["destination_type"] == "queue"
    }
    assert bindings == EXPECTED_BINDINGS


def test_definitions_file_is_private_and_declares_what_the_broker_has(host: Any) -> None:
    """The file the broker loads at boot declares exactly the running exchanges, queues, bindings and policies."""
    definitions = host.file("/etc/rabbitmq/definitions.json")
    assert (definitions.user, definitions.group, definitions.mode) == ("root", "rabbitmq", 0o640)
    declared = json.loads(definitions.content_string)
    assert {(e["name"], e["type"]) for e in declared["exchanges"]} == set(EXPECTED_EXCHANGES.items())
    running_queues = {q["name"] for q in rabbitmqadmin(host, "list", "queues") if q["vhost"] == "/"}
    assert {q["name"] for q in declared["queues"]} == running_queues
    assert {(b["source"], b["destination"], b["routing_key"]) for b in declared["bindings"]} == EXPECTED_BINDINGS
    running_policies = {p["name"]: p["definition"] for p in rabbitmqadmin(host, "list", "policies")}
    assert {p["name"]: p["definition"] for p in declared["policies"]} == running_policies


def test_message_matching_no_binding_is_returned_unrouted(host: Any) -> None:
    # The broker's basic.return to the mandatory publish says it reached no queue; the depths confirm it.
    before = queue_depths(host)
    assert publish(host, "events", "invoice.created", {"invoice_id": 1}) == "Message published but NOT routed"
    assert queue_depths(host) == before
