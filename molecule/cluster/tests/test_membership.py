"""Shrinking and growing the cluster: playbooks/remove-node.yml takes the third node out while the product's
publisher sends order events with confirms and the workers consume; then site.yml, with the node still in the
rabbitmq group, adds it back and gives it a replica of every quorum queue. Nothing confirmed is lost, the workers
are never restarted, and the cluster ends as it began (three nodes, every queue replicated on each, the same
definitions everywhere), as the tests after this file expect."""

from __future__ import annotations

import re
import time
from typing import Any

from conftest import (
    ALL_QUEUES,
    NODE_NAMES,
    NODES,
    WORK_QUEUES,
    assert_same_definitions,
    cluster_status,
    queues,
    run_playbook,
)
from test_faults import COUNT, Load, all_running, check_nothing_lost, handled_ids, orders_at_debug, restarts, wait_for

REMOVED = NODES[2]
REMAINING = NODE_NAMES - {f"rabbit@{REMOVED}"}
REMOVE = "playbooks/remove-node.yml"
ACKNOWLEDGED = ("-e", "warren_remove_node_accept_fewer_than_three=true")


def said(result: Any) -> str:
    """The run's output as one line of words: the failure message whatever the wrapping and colours."""
    return " ".join(re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr).split())


def test_removing_a_node_below_three_needs_an_acknowledgement(first: Any) -> None:
    result = run_playbook(REMOVE, "-e", f"warren_remove_node={REMOVED}")
    assert result.returncode != 0, result.stdout[-3000:]
    assert f"Removing rabbit@{REMOVED} would leave 2 node(s) for" in said(result), said(result)[-3000:]
    assert "Add the replacement node first" in said(result)
    assert all_running(first)
    assert all(set(q["members"]) == NODE_NAMES for q in queues(first).values())


def test_removing_and_adding_back_a_node_loses_no_confirmed_message(nodes: dict[str, Any], first: Any) -> None:
    try:
        with orders_at_debug(first):
            before = restarts(first)
            load = Load(first, "remove")
            wait_for("the first messages handled", lambda: len(handled_ids(first, load)) >= COUNT // 10, timeout=120)
            removed_at = time.time()
            removed = run_playbook(REMOVE, "-e", f"warren_remove_node={REMOVED}", *ACKNOWLEDGED)
            assert removed.returncode == 0, removed.stdout[-4000:] + removed.stderr[-2000:]
            print(f"\nremove-node.yml under load: {time.time() - removed_at:.0f} s")
            assert set(cluster_status(first)["running_nodes"]) == REMAINING
            listed = queues(first)
            for name in WORK_QUEUES:
                assert set(listed[name]["members"]) == REMAINING, (name, listed[name])
                assert set(listed[name]["online"]) == REMAINING, (name, listed[name])
            assert nodes[REMOVED].run("systemctl is-enabled rabbitmq-server").stdout.strip() == "disabled"
            check_nothing_lost(first, load, before, removed_at, "node removal")
        again = run_playbook(REMOVE, "-e", f"warren_remove_node={REMOVED}", *ACKNOWLEDGED)
        assert again.returncode != 0
        assert f"rabbit@{REMOVED} is not in the cluster of {NODES[0]}" in said(again), said(again)[-3000:]
    finally:
        # The node goes back in whatever happened above: the tests after this file need three nodes.
        added_at = time.time()
        added = run_playbook("site.yml")
    assert added.returncode == 0, added.stdout[-4000:] + added.stderr[-2000:]
    print(f"site.yml adding {REMOVED} back: {time.time() - added_at:.0f} s")
    wait_for("three running nodes again", lambda: all_running(first), timeout=120)
    listed = queues(first)
    for name in ALL_QUEUES:
        assert set(listed[name]["members"]) == NODE_NAMES, (name, listed[name])
        assert set(listed[name]["online"]) == NODE_NAMES, (name, listed[name])
    assert_same_definitions(nodes)
