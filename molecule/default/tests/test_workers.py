"""The deployed workers: units, consumers, the tutorials' commands, restarts without loss, bad messages."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import peek_messages, profiles_at_debug, publish, queue_depths, restart_afresh, worker_units

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
    return host.run_expect([0], f"journalctl -u '{units}' --since @{since:.3f} --no-pager -o cat").stdout


@pytest.mark.parametrize("instance", sorted(INSTANCES))
def test_instance_active_and_enabled(host: Any, instance: str) -> None:
    service = host.service(f"warren-worker@{instance}")
    assert service.is_running
    assert service.is_enabled


def test_workers_target_enabled(host: Any) -> None:
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


def test_profile_and_credential_are_private_and_the_secret_is_nowhere_else(host: Any) -> None:
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


def test_tutorial_publishes_are_handled_with_the_tutorials_lines(host: Any) -> None:
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


# The three use cases of the reference scenario: (exchange, routing key, queue, body); "" is the default exchange.
USE_CASES = [
    ("events", "order.created", "order.events", {"order_id": 123, "event": "order.created"}),
    ("", "jobs", "jobs", {"job": "test1"}),
    ("notifications", "whatsapp", "whatsapp.notifications", {"phone": "+911234567890", "message": "Order shipped"}),
]
DEAD_LETTER_QUEUES = ["order.events.dlq", "jobs.dlq", "whatsapp.notifications.dlq"]
ORDERS_UNITS = "warren-worker@orders-1 warren-worker@orders-2"
ACKED = re.compile(r"outcome=acked queue=(\S+) routing_key=(\S+) message_id=(\S+)")


def dead_letter_depths(host: Any) -> dict[str, int]:
    depths = queue_depths(host)
    return {q: depths[q][0] for q in DEAD_LETTER_QUEUES}


def publish_file(host: Any, path: str, lines: list[dict[str, Any]]) -> None:
    """Write `lines` as warren-publish envelopes to `path` on the host."""
    host.run_expect(
        [0],
        "python3 -c %s %s %s",
        "import sys; open(sys.argv[1], 'w').write(sys.argv[2])",
        path,
        "".join(json.dumps(line) + "\n" for line in lines),
    )


def write_order_envelopes(host: Any, path: str, prefix: str, numbers: range) -> None:
    """Write order events `prefix`-n for n in `numbers` to `path` on the host (written there: thousands of lines
    are more than one command-line argument may hold)."""
    script = (
        "import json, sys\n"
        "prefix, first, stop = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])\n"
        "with open(sys.argv[1], 'w') as out:\n"
        "    for n in range(first, stop):\n"
        "        body = {'order_id': n, 'event': 'order.updated'}\n"
        "        envelope = {'message_id': f'{prefix}-{n}', 'routing_key': 'order.updated', 'body': body}\n"
        "        out.write(json.dumps(envelope) + '\\n')\n"
    )
    host.run_expect([0], "python3 -c %s %s %s %s %s", script, path, prefix, str(numbers.start), str(numbers.stop))


def unit_properties(host: Any, unit: str, *names: str) -> dict[str, str]:
    shown = host.run_expect([0], f"systemctl show {unit} " + " ".join(f"-p {n}" for n in names)).stdout
    return dict(line.split("=", 1) for line in shown.splitlines())


def wait_for_consumers(host: Any, timeout: float = 60) -> None:
    """Every instance consumes its queue again (after a restart of theirs or of the broker)."""
    expected = {q: list(INSTANCES.values()).count(q) for q in INSTANCES.values()}
    deadline = time.monotonic() + timeout
    while (consumers := {q: queue_depths(host)[q][2] for q in expected}) != expected:
        assert time.monotonic() < deadline, f"consumers {consumers}, expected {expected} within {timeout}s"
        time.sleep(0.5)


@pytest.fixture
def all_profiles_at_debug(host: Any) -> Iterator[None]:
    with profiles_at_debug(host, "orders", "jobs", "whatsapp"):  # an acked line per message is DEBUG
        yield


def test_three_use_cases_are_routed_persistent_then_handled_and_acked_by_message_id(
    host: Any, all_profiles_at_debug: None
) -> None:
    run = uuid.uuid4().hex[:8]
    cases = {f"usecase-{run}-{queue}": (exchange, key, queue, body) for exchange, key, queue, body in USE_CASES}
    envelopes = [
        {"exchange": exchange, "routing_key": key, "message_id": message_id, "body": {**body, "run": run}}
        for message_id, (exchange, key, _, body) in cases.items()
    ]
    publish_file(host, f"/tmp/usecases-{run}.jsonl", envelopes)
    dead_before = dead_letter_depths(host)
    running = worker_units(host, "active")
    # Stopped workers leave the messages in their queues, to be looked at there (and put back) before they run.
    host.run_expect([0], "systemctl stop warren-workers.target")
    try:
        start = time.time()
        host.run_expect([0], f"{PUBLISH} --file /tmp/usecases-{run}.jsonl")
        for message_id, (_, key, queue, _) in cases.items():
            mine = [m for m in peek_messages(host, queue, count=100) if m["properties"].get("message_id") == message_id]
            assert len(mine) == 1, f"{message_id} in {queue}: {mine}"
            assert mine[0]["properties"]["delivery_mode"] == 2, mine
            assert mine[0]["routing_key"] == key
    finally:
        host.run(f"rm -f /tmp/usecases-{run}.jsonl")
        # Starting units by name returns once each consumes (Type=notify).
        host.run_expect([0], "systemctl start " + " ".join(running))
    wait_until_drained(host, [queue for _, _, queue, _ in USE_CASES])
    done_line = f"Done job {{'job': 'test1', 'run': '{run}'}}"
    deadline = time.monotonic() + 30
    while True:
        journal = journal_since(host, start)
        acked = {m[2]: (m[0], m[1]) for m in ACKED.findall(journal) if m[2] in cases}
        if (len(acked) == len(cases) and done_line in journal) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert acked == {message_id: (queue, key) for message_id, (_, key, queue, _) in cases.items()}
    assert done_line in journal
    assert f"Received event {{'order_id': 123, 'event': 'order.created', 'run': '{run}'}}" in journal
    assert "Sending WhatsApp message to +911234567890: Order shipped" in journal
    assert not [line for line in journal.splitlines() if f"usecase-{run}" in line and "outcome=acked" not in line]
    assert dead_letter_depths(host) == dead_before


def test_orders_restarts_with_messages_in_flight_lose_none(host: Any, orders_at_debug: None) -> None:
    """5,000 persistent messages, the last 1,000 published during the restarts: duplicates allowed, losses not.

    The first 4,000 are queued while the instances are stopped, so that the restarts, right after they start
    consuming them, are likely to find deliveries in hand (not certain: the drain counts are reported).
    """
    run = uuid.uuid4().hex[:8]
    total, queued = 5000, 4000
    write_order_envelopes(host, f"/tmp/restart-{run}-a.jsonl", f"restart-{run}", range(queued))
    write_order_envelopes(host, f"/tmp/restart-{run}-b.jsonl", f"restart-{run}", range(queued, total))
    start = float(host.run_expect([0], "date +%s.%N").stdout)
    host.run_expect([0], f"systemctl stop {ORDERS_UNITS}")
    try:
        host.run_expect([0], f"{PUBLISH} --exchange events --file /tmp/restart-{run}-a.jsonl")
        # Start (returns once both consume), then restart one after the other while the rest is published.
        result = host.run(
            f"bash -c 'systemctl start {ORDERS_UNITS} || exit 1; "
            f"{PUBLISH} --exchange events --file /tmp/restart-{run}-b.jsonl & pub=$!; "
            "systemctl restart warren-worker@orders-1 && systemctl restart warren-worker@orders-2; "
            "rc=$?; wait $pub && exit $rc'"
        )
        assert result.rc == 0, result.stdout + result.stderr
    finally:
        host.run(f"systemctl start {ORDERS_UNITS}")
        host.run(f"rm -f /tmp/restart-{run}-*.jsonl")
    wait_until_drained(host, ["order.events"])
    journal = journal_since(host, start)
    in_flight_at_drain = [int(n) for n in re.findall(r"stopping: draining (\d+) in-flight messages", journal)]
    # Four drains: the stop, then each restart. Whether a restart had deliveries in hand depends on timing (32
    # in one run, none in another), so it is reported here; the jobs restart test below proves a drain with work
    # in hand.
    assert len(in_flight_at_drain) == 4, in_flight_at_drain
    acked = re.findall(rf"outcome=acked .*message_id=restart-{run}-(\d+)", journal)
    missing = set(map(str, range(total))) - set(acked)
    duplicates = len(acked) - len(set(acked))
    assert not missing, (
        f"{len(missing)} of {total} never acked, e.g. {sorted(missing)[:5]} ({duplicates} duplicates, "
        f"in flight at each drain: {in_flight_at_drain})"
    )
    for instance in ("orders-1", "orders-2"):
        assert host.service(f"warren-worker@{instance}").is_running


def test_a_restart_with_a_job_in_hand_finishes_it_before_exiting(host: Any) -> None:
    """A restart while the jobs worker runs a job: it drains with that delivery in flight (a count above zero),
    finishes and acks the job, then exits; the job is not redelivered and nothing is dead-lettered."""
    marker = f"drain-{uuid.uuid4().hex[:8]}"
    dead_before = dead_letter_depths(host)
    start = float(host.run_expect([0], "date +%s.%N").stdout)
    publish(host, "amq.default", "jobs", {"job": marker, "seconds": 4})
    deadline = time.monotonic() + 30
    while f"Received job {{'job': '{marker}'" not in journal_since(host, start, "warren-worker@jobs-1"):
        assert time.monotonic() < deadline, "the jobs worker never started the job"
        time.sleep(0.2)
    restart_afresh(host, "warren-worker@jobs-1")
    journal = journal_since(host, start, "warren-worker@jobs-1")
    drains = [int(n) for n in re.findall(r"stopping: draining (\d+) in-flight messages", journal)]
    assert drains and drains[0] > 0, journal
    done = journal.find(f"Done job {{'job': '{marker}'")
    assert 0 <= done < journal.find("drained; closing connection"), journal
    assert journal.count(f"Received job {{'job': '{marker}'") == 1, "the job was redelivered"
    wait_until_drained(host, ["jobs"])
    assert dead_letter_depths(host) == dead_before


def test_broker_restart_under_load_loses_nothing_and_restarts_no_worker(host: Any, orders_at_debug: None) -> None:
    """`systemctl restart rabbitmq-server` while the orders instances consume 1,000 persistent messages."""
    units = [f"warren-worker@{instance}" for instance in sorted(INSTANCES)]
    before = {unit: unit_properties(host, unit, "MainPID", "NRestarts") for unit in units}
    assert all(p["NRestarts"] == "0" for p in before.values()), before
    run = uuid.uuid4().hex[:8]
    total = 1000
    write_order_envelopes(host, f"/tmp/broker-restart-{run}.jsonl", f"broker-restart-{run}", range(total))
    dead_before = dead_letter_depths(host)
    start = float(host.run_expect([0], "date +%s.%N").stdout)
    # The orders instances are frozen while the messages are queued and thawed once the broker stops listening:
    # they hold deliveries when their connections drop, and back off and reconnect while the node boots.
    host.run_expect([0], f"systemctl kill -s SIGSTOP {ORDERS_UNITS}")
    try:
        host.run_expect([0], f"{PUBLISH} --exchange events --file /tmp/broker-restart-{run}.jsonl")
        restart = host.run(
            "bash -c 'systemctl restart rabbitmq-server & restart=$!; end=$((SECONDS + 60)); "
            "while (: > /dev/tcp/127.0.0.1/5672) 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.1; done; "
            f"systemctl kill -s SIGCONT {ORDERS_UNITS}; wait $restart'"
        )
        assert restart.rc == 0, restart.stdout + restart.stderr
    finally:
        host.run(f"systemctl kill -s SIGCONT {ORDERS_UNITS}")
        host.run(f"rm -f /tmp/broker-restart-{run}.jsonl")
    wait_for_consumers(host)
    wait_until_drained(host, ["order.events"])
    journal = journal_since(host, start)
    acked = re.findall(rf"outcome=acked .*message_id=broker-restart-{run}-(\d+)", journal)
    missing = set(map(str, range(total))) - set(acked)
    duplicates = len(acked) - len(set(acked))
    assert not missing, f"{len(missing)} of {total} never acked, e.g. {sorted(missing)[:5]} ({duplicates} duplicates)"
    assert dead_letter_depths(host) == dead_before
    after = {unit: unit_properties(host, unit, "MainPID", "NRestarts") for unit in units}
    assert after == before
    for unit in units:
        assert "connected to " in journal_since(host, start, unit), f"{unit} logged no reconnect"


def test_malformed_message_is_dead_lettered_and_worker_survives(host: Any) -> None:
    pid_before = host.run_expect([0], "systemctl show warren-worker@jobs-1 -p MainPID --value").stdout.strip()
    marker = uuid.uuid4().hex
    host.run_expect([0], f"rabbitmqadmin publish exchange=amq.default routing_key=jobs payload='not json {marker}'")
    wait_until_drained(host, ["jobs"])
    dead = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not dead:
        dead = [m for m in peek_messages(host, "jobs.dlq", count=1000) if marker in m["payload"]]
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
def test_ops_commands_on_path_print_their_version(host: Any, command: str) -> None:
    assert host.run_expect([0], f"{command} --version").stdout.startswith(command)
