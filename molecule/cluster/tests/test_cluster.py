"""The cluster site.yml formed: three running nodes seen alike from each, pause_minority, the same definitions
everywhere, quorum work queues with a replica on every node and their policies, workers with every broker."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from conftest import (
    ALL_QUEUES,
    NODE_NAMES,
    NODES,
    WORK_QUEUES,
    assert_same_definitions,
    cluster_status,
    queues,
    run_json,
)


def test_every_node_sees_three_running_nodes_and_no_partition(host: Any) -> None:
    status = cluster_status(host)
    assert set(status["running_nodes"]) == NODE_NAMES
    assert set(status["disk_nodes"]) == NODE_NAMES
    assert not status["partitions"]


def test_partition_handling_is_pause_minority(host: Any) -> None:
    setting = host.run_expect([0], "rabbitmqctl eval 'application:get_env(rabbit, cluster_partition_handling).'")
    assert setting.stdout.strip() == "{ok,pause_minority}"


def test_definitions_are_the_same_on_every_node(nodes: dict[str, Any]) -> None:
    assert_same_definitions(nodes)


def test_every_queue_is_quorum_with_a_replica_on_every_node(host: Any) -> None:
    listed = queues(host)
    for name in ALL_QUEUES:
        assert listed[name]["type"] == "quorum", name
        assert set(listed[name]["members"]) == NODE_NAMES, name
        assert set(listed[name]["online"]) == NODE_NAMES, name


@pytest.mark.parametrize("queue", WORK_QUEUES)
def test_work_queues_dead_letter_at_least_once_with_a_delivery_limit(first: Any, queue: str) -> None:
    policy_name = queues(first)[queue]["policy"]
    policies = {p["name"]: p for p in run_json(first, "rabbitmqctl list_policies --quiet --formatter json")}
    definition = json.loads(policies[policy_name]["definition"])
    assert definition["dead-letter-exchange"] == "warren.dlx"
    assert definition["dead-letter-strategy"] == "at-least-once"
    assert definition["overflow"] == "reject-publish"
    assert definition["delivery-limit"] == 20


def test_workers_take_every_broker_as_an_endpoint(first: Any) -> None:
    # AMQPS to every broker by the name its certificate carries, their own broker first; the deployment's CA.
    wanted = [f"amqps://{node}:5671" for node in NODES]
    for profile in ("orders", "jobs", "whatsapp"):
        config = first.file(f"/etc/warren/{profile}.toml").content_string
        assert f"endpoints = {json.dumps(wanted)}" in config, profile
        assert 'ca_file = "/etc/warren/ca.pem"' in config, profile


def journal_since(host: Any, since: float) -> str:
    return host.run_expect([0], f"journalctl -u 'warren-worker@*' --since @{int(since) - 1} --no-pager -o cat").stdout


def test_the_three_use_cases_flow_from_any_node_to_the_workers(nodes: dict[str, Any], first: Any) -> None:
    """Published on the second and third nodes, consumed by the workers connected to the first."""
    start = time.time()
    order_id = int(uuid.uuid4().int % 10**9)
    job = uuid.uuid4().hex
    second, third = nodes[NODES[1]], nodes[NODES[2]]
    second.run_expect(
        [0],
        'rabbitmqadmin publish exchange=events routing_key="order.created" '
        f'payload=\'{{"order_id":{order_id},"event":"order.created"}}\' properties=\'{{"delivery_mode":2}}\'',
    )
    third.run_expect(
        [0],
        'rabbitmqadmin publish exchange=notifications routing_key="whatsapp" '
        'payload=\'{"phone":"+911234567890","message":"Your order has shipped"}\' properties=\'{"delivery_mode":2}\'',
    )
    third.run_expect(
        [0],
        f'rabbitmqadmin publish exchange=amq.default routing_key=jobs payload=\'{{"job":"{job}"}}\' '
        "properties='{\"delivery_mode\":2}'",
    )
    wanted = (
        f"Received event {{'order_id': {order_id}, 'event': 'order.created'}}",
        "Sending WhatsApp message to +911234567890: Your order has shipped",
        job,
    )
    deadline = time.monotonic() + 60
    journal = ""
    while time.monotonic() < deadline:
        journal = journal_since(first, start)
        if all(line in journal for line in wanted):
            break
        time.sleep(1)
    missing = [line for line in wanted if line not in journal]
    assert not missing, journal[-3000:]
