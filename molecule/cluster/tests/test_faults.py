"""Faults under load: while a publisher sends persistent order events with confirms and the workers consume,
(1) the broker the workers and the publisher are connected to is killed (SIGKILL) and started again, (2) the
rolling-restart playbook restarts every node. Every confirmed message_id must be handled at least once
(duplicates allowed), the workers must reconnect on their own (no systemd restart), and the queues drain to 0.
Traffic stays between the scenario's containers; every wait is bounded."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import NODE_NAMES, NODES, cluster_status, queues

REPO_DIR = Path(__file__).resolve().parents[3]
PUBLISHER = Path(__file__).resolve().parent / "confirm_publisher.py"
WORKER_PYTHON = "/opt/warren/venv/bin/python"
UNITS = ("orders-1", "orders-2", "jobs-1", "whatsapp-1")
COUNT, RATE = 1500, 100.0


def wait_for(what: str, check: Any, timeout: float, interval: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"not within {timeout:.0f} s: {what}")


def restarts(host: Any) -> dict[str, int]:
    return {
        unit: int(host.run_expect([0], f"systemctl show -p NRestarts --value warren-worker@{unit}").stdout)
        for unit in UNITS
    }


@contextlib.contextmanager
def orders_at_debug(host: Any) -> Iterator[None]:
    """The orders instances at DEBUG, which writes a line per acknowledged message with its message_id."""
    path = "/etc/warren/orders.toml"
    host.run_expect([0], f"cp -p {path} {path}.deployed")
    try:
        host.run_expect([0], f"sed -i 's/^level = .*/level = \"DEBUG\"/' {path}")
        host.run_expect([0], "systemctl restart 'warren-worker@orders-*'")
        yield
    finally:
        host.run_expect([0], f"mv {path}.deployed {path}")
        host.run_expect([0], "systemctl restart 'warren-worker@orders-*'")


class Load:
    """The publisher, started in the background on the first node as a transient systemd unit."""

    def __init__(self, host: Any, name: str) -> None:
        self.host, self.run = host, f"{name}-{uuid.uuid4().hex[:6]}"
        self.out = f"/tmp/{self.run}.ids"
        self.start = time.time()
        self.unit = f"warren-fault-{self.run}"
        host.run_expect([0], f"cat > /tmp/confirm_publisher.py <<'EOF'\n{PUBLISHER.read_text()}\nEOF")
        host.run_expect(
            [0],
            f"systemd-run --unit={self.unit} --remain-after-exit {WORKER_PYTHON} /tmp/confirm_publisher.py "
            f"--endpoints {' '.join(NODES)} --password-file /etc/warren/credentials/amqp-password "
            f"--prefix {self.run} --count {COUNT} --rate {RATE} --out {self.out}",
        )

    def confirmed_so_far(self) -> int:
        return int(self.host.run(f"wc -l < {self.out}").stdout.strip() or 0)

    def finish(self) -> tuple[dict[str, Any], set[str]]:
        wait_for(
            "the publisher to finish",
            lambda: self.host.run(f"systemctl show -p SubState --value {self.unit}").stdout.strip() == "exited",
            timeout=300,
        )
        log = self.host.run_expect([0], f"journalctl -u {self.unit} --no-pager -o cat").stdout
        summary = [line for line in log.splitlines() if line.startswith("{")]
        assert summary, log
        confirmed = set(self.host.run_expect([0], f"cat {self.out}").stdout.split())
        self.host.run(f"systemctl stop {self.unit}; rm -f {self.out}")

        return json.loads(summary[-1]), confirmed


def handled_since(host: Any, run: str, since: float) -> tuple[set[str], list[float]]:
    journal = host.run_expect(
        [0], f"journalctl -u 'warren-worker@orders-*' --since @{int(since) - 1} --no-pager -o short-unix"
    ).stdout
    ids, times = set(), []
    for line in journal.splitlines():
        match = re.search(rf"outcome=acked .*message_id=({run}-\d+)", line)
        if match:
            ids.add(match.group(1))
            times.append(float(line.split()[0]))
    return ids, times


def all_running(host: Any) -> bool:
    with contextlib.suppress(AssertionError):
        return set(cluster_status(host)["running_nodes"]) == NODE_NAMES
    return False


def drained(host: Any) -> bool:
    depth = queues(host)["order.events"]
    return depth["messages"] == 0


def check_nothing_lost(first: Any, load: Load, restarts_before: dict[str, int], fault_at: float, label: str) -> None:
    summary, confirmed = load.finish()
    wait_for("order.events to drain", lambda: drained(first), timeout=180)
    handled, times = wait_for(
        "every confirmed message to be handled",
        lambda: (lambda h: h if confirmed <= h[0] else None)(handled_since(first, load.run, load.start)),
        timeout=60,
    )
    lost = confirmed - handled
    # The workers' outage: the longest time without a handled message from the fault on (a handler's results just
    # before the connection dropped are logged at once, so "the first one after the fault" would say nothing).
    around = sorted(t for t in times if t >= fault_at - 1)
    pause = max((b - a for a, b in itertools.pairwise(around)), default=0.0)
    print(
        f"\n{label}: sent={summary['sent']} confirmed={len(confirmed)} handled={len(handled)} lost={len(lost)} "
        f"publisher reconnects={summary['reconnects']} longest pause in handling from the fault on: {pause:.1f} s"
    )
    assert summary["confirmed"] == COUNT == len(confirmed), summary
    assert not lost, sorted(lost)[:10]
    assert restarts(first) == restarts_before, "workers were restarted by systemd instead of reconnecting"


def test_killing_the_workers_broker_loses_no_confirmed_message(nodes: dict[str, Any], first: Any) -> None:
    with orders_at_debug(first):
        before = restarts(first)
        load = Load(first, "kill")
        wait_for("a fifth of the messages confirmed", lambda: load.confirmed_so_far() >= COUNT // 5, timeout=120)
        killed_at = time.time()
        first.run_expect([0], "systemctl kill --signal=KILL rabbitmq-server")
        wait_for(
            "the other nodes to see the first one gone",
            lambda: f"rabbit@{NODES[0]}" not in cluster_status(nodes[NODES[1]])["running_nodes"],
            timeout=60,
        )
        wait_for("the publisher to go on through another node", lambda: load.confirmed_so_far() >= COUNT // 2, 120)
        first.run_expect([0], "systemctl start rabbitmq-server")
        first.run_expect([0], "rabbitmqctl await_startup --timeout 300")
        wait_for("three running nodes again", lambda: all_running(first), timeout=120)
        check_nothing_lost(first, load, before, killed_at, "node loss")


def test_the_rolling_restart_loses_no_confirmed_message(first: Any) -> None:
    inventory = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
    with orders_at_debug(first):
        before = restarts(first)
        load = Load(first, "rolling")
        wait_for("the first messages confirmed", lambda: load.confirmed_so_far() >= COUNT // 10, timeout=120)
        started_at = time.time()
        result = subprocess.run(
            ["ansible-playbook", "-i", inventory, str(REPO_DIR / "playbooks" / "rolling-restart.yml")],
            cwd=REPO_DIR,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
        print(f"\nrolling restart of 3 nodes: {time.time() - started_at:.0f} s")
        wait_for("three running nodes", lambda: all_running(first), timeout=120)
        check_nothing_lost(first, load, before, started_at, "rolling restart")
