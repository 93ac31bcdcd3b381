"""Helpers of the cluster scenario's verify step. Testinfra runs a test taking `host` once per node; the tests
about the whole cluster take `nodes` (every node by name) or `first` (the node that also runs the workers)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import testinfra

NODES = ("warren-molecule-cluster-1", "warren-molecule-cluster-2", "warren-molecule-cluster-3")
NODE_NAMES = {f"rabbit@{node}" for node in NODES}
WORK_QUEUES = ("order.events", "jobs", "whatsapp.notifications")
# Every queue of the topology: the work queues with their retry and dead-letter queues.
ALL_QUEUES = WORK_QUEUES + tuple(f"{q}.retry" for q in WORK_QUEUES) + tuple(f"{q}.dlq" for q in WORK_QUEUES)
REPO_DIR = Path(__file__).resolve().parents[3]


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


def run_playbook(playbook: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`ansible-playbook <playbook> <args>` on the scenario's inventory, from the repository (its ansible.cfg)."""
    return subprocess.run(
        ["ansible-playbook", "-i", os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"]), playbook, *args],
        cwd=REPO_DIR,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def assert_same_definitions(nodes: dict[str, Any]) -> None:
    """The same definitions file on every node, and the same entities exported from each node's own management
    API (rabbitmqctl export_definitions crashes on RabbitMQ 3.10.8)."""
    exported = {
        node: run_json(h, "rabbitmqadmin -q export /tmp/definitions.json && cat /tmp/definitions.json")
        for node, h in nodes.items()
    }
    files = {node: h.file("/etc/rabbitmq/definitions.json").sha256sum for node, h in nodes.items()}
    assert len(set(files.values())) == 1, files
    reference = exported[NODES[0]]
    for node in NODES[1:]:
        for section in ("vhosts", "exchanges", "queues", "bindings", "policies", "users", "permissions"):
            assert sorted(map(repr, exported[node][section])) == sorted(map(repr, reference[section])), (node, section)


@pytest.fixture(scope="session")
def nodes() -> dict[str, Any]:
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    return {node: testinfra.get_host(f"ansible://{node}?ansible_inventory={inventory}") for node in NODES}


@pytest.fixture(scope="session")
def first(nodes: dict[str, Any]) -> Any:
    return nodes[NODES[0]]
