"""The deployed workers: units, consumers, the tutorials' commands, restarts without loss, bad messages."""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

import pytest
from conftest import get_messages, queue_depths

INSTANCES = {
    "orders-1": "order.events",
    "orders-2": "order.events",
    "jobs-1": "jobs",
    "whatsapp-1": "whatsapp.notifications",
}
PUBLISH = "warren-publish --username warren --password-file /etc/warren/credentials/amqp-password"


def wait_until_drained(host: Any, queues: list[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        depths = queue_depths(host)
        if all(depths[q][:2] == (0, 0) for q in queues):
            return
        time.sleep(1)
    pytest.fail(f"queues not drained within {timeout}s: { {q: queue_depths(host)[q] for q in queues} }")


def journal_since(host: Any, since: float, units: str = "warren-worker@*") -> str:
    return host.run_expect([0], f"journalctl -u '{units}' --since @{int(since) - 1} --no-pager -o cat").stdout


@pytest.mark.parametrize("instance", sorted(INSTANCES))
def test_instance_active_and_enabled(host: Any, instance: str) -> None:
    service = host.service(f"warren-worker@{instance}")
    assert service.is_running
    assert service.is_enabled


def test_target_enabled(host: Any) -> None:
    assert host.service("warren-workers.target").is_enabled


def test_every_instance_consumes_its_queue(host: Any) -> None:
    expected: dict[str, int] = {}
    for queue in INSTANCES.values():
        expected[queue] = expected.get(queue, 0) + 1
    # Instances restarted by the scale side effect or the paused-workers fixture may still be connecting.
    deadline = time.monotonic() + 60
    while True:
        consumers = {q: queue_depths(host)[q][2] for q in expected}
        if consumers == expected or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert consumers == expected


def test_config_and_credential_permissions(host: Any) -> None:
    profile = host.file("/etc/warren/orders.toml")
    assert (profile.user, profile.group, profile.mode) == ("root", "warren", 0o640)
    credential = host.file("/etc/warren/credentials/amqp-password")
    assert (credential.user, credential.group, credential.mode) == ("warren", "warren", 0o600)
    secret = credential.content_string.strip()
    assert len(secret) >= 16
    for path in (
        "/etc/warren/orders.toml",
        "/etc/systemd/system/warren-worker@.service",
        "/etc/warren/instances/orders-1.env",
    ):
        assert secret not in host.file(path).content_string, path


def test_tutorial_commands_are_processed(host: Any) -> None:
    start = time.time()
    order_id = int(uuid.uuid4().int % 10**9)
    host.run_expect(
        [0],
        'rabbitmqadmin publish exchange=events routing_key="order.created" '
        f'payload=\'{{"order_id":{order_id},"event":"order.created"}}\'',
    )
    host.run_expect(
        [0],
        'rabbitmqadmin publish exchange=notifications routing_key="whatsapp" '
        'payload=\'{"phone":"+911234567890","message":"Your order has shipped"}\'',
    )
    wait_until_drained(host, ["order.events", "whatsapp.notifications"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        journal = journal_since(host, start)
        if f"'order_id': {order_id}" in journal and "Sending WhatsApp message to +911234567890" in journal:
            break
        time.sleep(1)
    assert f"Received event {{'order_id': {order_id}, 'event': 'order.created'}}" in journal
    assert "Processing event type order.created" in journal
    assert "Sending WhatsApp message to +911234567890: Your order has shipped" in journal


def test_messages_published_during_a_restart_are_all_processed(host: Any, orders_at_debug: None) -> None:
    """1,000 persistent messages while every orders instance restarts: duplicates allowed, losses not."""
    run = uuid.uuid4().hex[:8]
    total, batches = 1000, 10
    per_batch = total // batches
    for b in range(batches):
        lines = "\n".join(
            json.dumps(
                {
                    "message_id": f"restart-{run}-{b * per_batch + i}",
                    "routing_key": "order.updated",
                    "body": {"order_id": b * per_batch + i, "event": "order.updated"},
                }
            )
            for i in range(per_batch)
        )
        host.run_expect([0], f"sh -c 'cat > /tmp/restart-{run}-{b}.jsonl' <<'EOF'\n{lines}\nEOF")
    start = time.time()
    publish_loop = (
        f"for b in $(seq 0 {batches - 1}); do {PUBLISH} --exchange events --file /tmp/restart-{run}-$b.jsonl "
        "|| exit 1; sleep 0.3; done"
    )
    # Publish in the background while the instances restart one after the other, then wait for both.
    result = host.run(
        f"bash -c '({publish_loop}) & pub=$!; sleep 0.5; "
        "systemctl restart warren-worker@orders-1 && systemctl restart warren-worker@orders-2; "
        "rc=$?; wait $pub && exit $rc'"
    )
    assert result.rc == 0, result.stdout + result.stderr
    host.run(f"rm -f /tmp/restart-{run}-*.jsonl")
    wait_until_drained(host, ["order.events"])
    acked = set(re.findall(rf"outcome=acked .*message_id=restart-{run}-(\d+)", journal_since(host, start)))
    missing = set(map(str, range(total))) - acked
    assert not missing, f"{len(missing)} of {total} messages were never processed, e.g. {sorted(missing)[:5]}"
    for instance in ("orders-1", "orders-2"):
        assert host.service(f"warren-worker@{instance}").is_running


def test_malformed_message_is_dead_lettered_and_worker_survives(host: Any) -> None:
    pid_before = host.run_expect([0], "systemctl show warren-worker@jobs-1 -p MainPID --value").stdout.strip()
    marker = uuid.uuid4().hex
    host.run_expect([0], f"rabbitmqadmin publish exchange=amq.default routing_key=jobs payload='not json {marker}'")
    wait_until_drained(host, ["jobs"])
    dead = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not dead:
        dead = [m for m in get_messages(host, "jobs.dlq", count=100) if marker in m["payload"]]
        time.sleep(0.5)
    assert len(dead) == 1
    headers = dead[0]["properties"]["headers"]
    assert headers["x-warren-reason"] == "invalid-message"
    assert headers["x-warren-origin-queue"] == "jobs"
    assert "JSON" in headers["x-warren-error"] or "json" in headers["x-warren-error"]
    assert host.service("warren-worker@jobs-1").is_running
    pid_after = host.run_expect([0], "systemctl show warren-worker@jobs-1 -p MainPID --value").stdout.strip()
    assert pid_after == pid_before


@pytest.mark.parametrize("instance", sorted(INSTANCES))
def test_sandbox_exposure_at_most_1_5(host: Any, instance: str) -> None:
    out = host.run_expect([0], f"systemd-analyze security warren-worker@{instance}.service").stdout
    score = float(re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out).group(1))
    assert score <= 1.5, out


@pytest.mark.parametrize("command", ["warren-publish", "warren-worker"])
def test_ops_commands_on_path(host: Any, command: str) -> None:
    assert host.run_expect([0], f"{command} --version").stdout.startswith(command)
