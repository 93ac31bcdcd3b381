"""The learning path's commands, as its pages print them, on the converged appliance (docs/learning-path.md).

Every declaration succeeds against Warren's topology, every payload the path publishes is handled and acked by
Warren's workers, nothing is dead-lettered, and the queues drain. Then the path's own worker.py, with the one
change the appliance needs (a user: guest is removed), consumes the path's jobs.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import profiles_at_debug, queue_depths
from test_workers import journal_since, wait_until_drained

# (command as the path prints it, with ./rabbitmqadmin as the installed rabbitmqadmin; its expected output)
DECLARATIONS = [
    ("rabbitmqadmin declare exchange name=events type=topic durable=true", "exchange declared"),
    ("rabbitmqadmin declare queue name=order.events durable=true", "queue declared"),
    ('rabbitmqadmin declare binding source=events destination=order.events routing_key="order.*"', "binding declared"),
]
LISTINGS = [
    "rabbitmqadmin list exchanges name type",
    "rabbitmqadmin list queues name messages",
    "rabbitmqadmin list bindings",
]
PUBLISHES = [
    'rabbitmqadmin publish exchange=events routing_key="order.created" payload=\'{"order_id":123}\'',
    'rabbitmqadmin publish exchange=events routing_key="order.created" payload=\'{"order_id":123,"event":"order.created"}\'',  # noqa: E501
    'rabbitmqadmin publish exchange=events routing_key="order.updated" payload=\'{"order_id":123,"event":"order.updated"}\'',  # noqa: E501
    'rabbitmqadmin publish routing_key=jobs payload=\'{"job":"test1"}\'',
    'rabbitmqadmin publish routing_key=jobs payload=\'{"job":"hello1"}\'',
]
# What Warren's handlers log for them, in that order.
HANDLED = [
    "Received event {'order_id': 123}",
    "Received event {'order_id': 123, 'event': 'order.created'}",
    "Received event {'order_id': 123, 'event': 'order.updated'}",
    "Received job {'job': 'test1'}",
    "Received job {'job': 'hello1'}",
]
QUEUES = ["order.events", "jobs"]
DEAD_LETTER_QUEUES = ["order.events.dlq", "jobs.dlq"]


def dlq_depths(host: Any) -> dict[str, int]:
    depths = queue_depths(host)
    return {q: depths[q][0] for q in DEAD_LETTER_QUEUES}


@pytest.mark.parametrize(("command", "output"), DECLARATIONS)
def test_declarations_succeed_on_the_appliance(host: Any, command: str, output: str) -> None:
    result = host.run(command)
    assert (result.rc, result.stdout.strip()) == (0, output), result.stderr


@pytest.mark.parametrize("command", LISTINGS)
def test_listings_show_the_paths_entities(host: Any, command: str) -> None:
    assert "events" in host.run_expect([0], command).stdout


@pytest.fixture
def orders_and_jobs_at_debug(host: Any) -> Iterator[None]:
    with profiles_at_debug(host, "orders", "jobs"):  # the acked lines below are DEBUG
        yield


def test_every_payload_is_handled_acked_and_none_dead_lettered(host: Any, orders_and_jobs_at_debug: None) -> None:
    dead_before = dlq_depths(host)
    start = time.time()
    for command in PUBLISHES:
        assert host.run_expect([0], command).stdout.strip() == "Message published"
    wait_until_drained(host, QUEUES)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        journal = journal_since(host, start)
        if all(line in journal for line in HANDLED) and len(re.findall("outcome=acked", journal)) >= len(PUBLISHES):
            break
        time.sleep(1)
    for line in HANDLED:
        assert line in journal
    acked = re.findall(r"outcome=acked queue=(\S+) routing_key=(\S+)", journal)
    assert sorted(acked).count(("jobs", "jobs")) >= 2
    assert "outcome=dead-lettered" not in journal
    assert dlq_depths(host) == dead_before
    assert all(queue_depths(host)[q][:2] == (0, 0) for q in QUEUES)


WORKER_PY = """\
import pika
import time
import json

# RabbitMQ broker address
RABBITMQ_IP = "localhost"

connection = pika.BlockingConnection(
    pika.ConnectionParameters(host=RABBITMQ_IP)
)
channel = connection.channel()

# Ensure queue exists
channel.queue_declare(queue='jobs', durable=True)

print("Worker started. Waiting for jobs...")

def process_job(ch, method, properties, body):
    job = json.loads(body.decode())
    print(f"[Worker] Received job: {job}")

    # Simulate processing
    time.sleep(2)

    # Acknowledge message
    ch.basic_ack(delivery_tag=method.delivery_tag)

# Fair dispatch configuration
channel.basic_qos(prefetch_count=1)

channel.basic_consume(
    queue='jobs',
    on_message_callback=process_job
)

channel.start_consuming()
"""
# The path's worker under a time limit; the path's two jobs once it waits for them; it is stopped once it has
# acked both (it sleeps 2 s per job before its ack). Each wait is a poll of at most 30 s.
RUN_WORKER = """\
timeout 60 /opt/warren/venv/bin/python -u /tmp/worker.py > /tmp/worker.out 2>&1 &
worker=$!
poll() { local end=$((SECONDS + 30)); until eval "$1"; do [ $SECONDS -lt $end ] || return 1; sleep 0.1; done; }
poll 'grep -q "Waiting for jobs" /tmp/worker.out'
rabbitmqadmin publish routing_key=jobs payload='{"job":"test1"}'
rabbitmqadmin publish routing_key=jobs payload='{"job":"hello1"}'
poll '[ "$(grep -c "Received job" /tmp/worker.out)" -ge 2 ]'
poll '[ "$(rabbitmqctl list_queues -q --no-table-headers name messages | grep -P "^jobs\t")" = "$(printf "jobs\t0")" ]'
kill $worker
cat /tmp/worker.out
"""
LEARNER = "learner"
# The one change docs/learning-path.md makes: credentials of a user allowed to declare and read jobs.
CREDENTIALS = (
    'pika.ConnectionParameters(host=RABBITMQ_IP, credentials=pika.PlainCredentials("learner", "learner-test"))'
)


def test_the_paths_worker_py_consumes_the_paths_jobs(host: Any) -> None:
    script = WORKER_PY.replace("pika.ConnectionParameters(host=RABBITMQ_IP)", CREDENTIALS)
    assert script != WORKER_PY
    host.run_expect([0], f"cat > /tmp/worker.py <<'EOF'\n{script}EOF")
    host.run_expect([0], f"rabbitmqctl add_user {LEARNER} learner-test")
    try:
        host.run_expect([0], f"rabbitmqctl set_permissions -p / {LEARNER} '^jobs$' '^$' '^jobs$'")
        host.run_expect([0], "systemctl stop warren-worker@jobs-1")
        try:
            host.run_expect([0], f"cat > /tmp/run-worker.sh <<'EOF'\n{RUN_WORKER}EOF")
            result = host.run("bash /tmp/run-worker.sh")
            assert "Worker started. Waiting for jobs..." in result.stdout, result.stdout + result.stderr
            assert "[Worker] Received job: {'job': 'test1'}" in result.stdout
            assert "[Worker] Received job: {'job': 'hello1'}" in result.stdout
            assert queue_depths(host)["jobs"][:2] == (0, 0)
        finally:
            host.run_expect([0], "systemctl start warren-worker@jobs-1")
    finally:
        host.run(f"rabbitmqctl delete_user {LEARNER}")
        host.run("rm -f /tmp/worker.py /tmp/worker.out /tmp/run-worker.sh")
