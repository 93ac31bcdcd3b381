"""Helpers of the cluster scenario's verify step. Testinfra runs a test taking `host` once per node; the tests
about the whole cluster take `nodes` (every node by name) or `first` (the node that also runs the workers)."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
import testinfra

NODES = ("warren-molecule-cluster-1", "warren-molecule-cluster-2", "warren-molecule-cluster-3")
NODE_NAMES = {f"rabbit@{node}" for node in NODES}
WORK_QUEUES = ("order.events", "jobs", "whatsapp.notifications")


def run_json(host: Any, command: str) -> Any:
    result = host.run(command)
    assert result.rc == 0, f"{command!r} failed ({result.rc}): {result.stderr or result.stdout}"
    return json.loads(result.stdout)


def cluster_status(host: Any) -> dict[str, Any]:
    status: dict[str, Any] = run_json(host, "rabbitmqctl cluster_status --formatter json")
    return status


def queues(host: Any) -> dict[str, dict[str, Any]]:
    """Every queue of / with its type, replicas and depth, straight from the broker (no stats delay)."""
    listed = run_json(
        host,
        "rabbitmqctl list_queues --quiet name type members online policy messages messages_unacknowledged "
        "consumers --formatter json",
    )
    return {queue["name"]: queue for queue in listed}


@pytest.fixture(scope="session")
def nodes() -> dict[str, Any]:
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    return {node: testinfra.get_host(f"ansible://{node}?ansible_inventory={inventory}") for node in NODES}


@pytest.fixture(scope="session")
def first(nodes: dict[str, Any]) -> Any:
    return nodes[NODES[0]]
