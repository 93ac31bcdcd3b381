"""Helpers for the testinfra verify step: everything runs inside the converged host, as root."""

from __future__ import annotations

import contextlib
import json
import shlex
from collections.abc import Iterator
from typing import Any

import pytest


def run_json(host: Any, command: str) -> Any:
    result = host.run(command)
    assert result.rc == 0, f"{command!r} failed ({result.rc}): {result.stderr or result.stdout}"
    return json.loads(result.stdout)


def rabbitmqadmin(host: Any, *args: str) -> Any:
    """Run the tutorials' rabbitmqadmin as root (credentials from /root/.rabbitmqadmin.conf)."""
    return run_json(host, "rabbitmqadmin -f raw_json " + " ".join(shlex.quote(a) for a in args))


def admin_credentials(host: Any) -> tuple[str, str]:
    config = host.run(
        'python3 -c "import configparser; c = configparser.RawConfigParser(); '
        "c.read('/root/.rabbitmqadmin.conf'); print(c['default']['username']); print(c['default']['password'])\""
    )
    assert config.rc == 0, config.stderr
    user, password = config.stdout.split("\n")[:2]
    return user, password


def http_status(host: Any, url: str, user: str, password: str) -> int:
    """HTTP status of a GET with basic auth, made from inside the host with the standard library."""
    script = (
        "import base64, sys, urllib.request, urllib.error\n"
        "req = urllib.request.Request(sys.argv[1])\n"
        "token = base64.b64encode((sys.argv[2] + ':' + sys.argv[3]).encode()).decode()\n"
        "req.add_header('Authorization', 'Basic ' + token)\n"
        "try:\n"
        "    print(urllib.request.urlopen(req, timeout=10).status)\n"
        "except urllib.error.HTTPError as err:\n"
        "    print(err.code)\n"
    )
    result = host.run("python3 -c %s %s %s %s", script, url, user, password)
    assert result.rc == 0, result.stderr
    return int(result.stdout.strip())


def publish(host: Any, exchange: str, routing_key: str, payload: dict[str, Any]) -> str:
    """Publish a persistent message with rabbitmqadmin; returns its output (routed or not)."""
    result = host.run(
        "rabbitmqadmin publish exchange=%s routing_key=%s payload=%s properties=%s",
        exchange,
        routing_key,
        json.dumps(payload),
        json.dumps({"delivery_mode": 2, "content_type": "application/json"}),
    )
    assert result.rc == 0, result.stderr
    return result.stdout.strip()


def peek_messages(host: Any, queue: str, count: int = 10) -> list[dict[str, Any]]:
    """Read up to `count` messages of `queue` and put them back (requeued, in order): a look, not a drain."""
    return rabbitmqadmin(host, "get", f"queue={queue}", f"count={count}", "ackmode=ack_requeue_true")


def queue_depths(host: Any) -> dict[str, tuple[int, int, int]]:
    """Ready, unacknowledged and consumer counts per queue, straight from the broker (no stats delay)."""
    out = host.run_expect(
        [0], "rabbitmqctl list_queues -q --no-table-headers name messages_ready messages_unacknowledged consumers"
    ).stdout
    return {name: (int(r), int(u), int(c)) for name, r, u, c in (line.split("\t") for line in out.splitlines())}


def worker_units(host: Any, states: str) -> list[str]:
    """Worker instance units in any of the comma-separated systemd `states`."""
    listed = host.run_expect(
        [0], f"systemctl list-units --state={states} --no-legend --plain --quiet 'warren-worker@*.service'"
    ).stdout
    return [line.split()[0] for line in listed.splitlines() if line.strip()]


@contextlib.contextmanager
def profiles_at_debug(host: Any, *profiles: str) -> Iterator[None]:
    """Run every instance of `profiles` at DEBUG, for checks that need a line per acknowledged message.

    At the deployed level (INFO) an acked message writes no line of its own (docs/operations.md, "Logs").
    """
    paths = [f"/etc/warren/{profile}.toml" for profile in profiles]
    units = " ".join(f"'warren-worker@{profile}-*'" for profile in profiles)
    for path in paths:
        host.run_expect([0], f"cp -p {path} {path}.deployed")
    try:
        for path in paths:
            host.run_expect([0], f"sed -i 's/^level = .*/level = \"DEBUG\"/' {path}")
        restart_afresh(host, units)
        yield
    finally:
        for path in paths:
            host.run_expect([0], f"mv {path}.deployed {path}")
        restart_afresh(host, units)


def restart_afresh(host: Any, units: str) -> None:
    """Restart `units` with their start limit reset (as an operator would, see the unit file): the verify tests
    restart workers more often than StartLimitBurst allows in StartLimitIntervalSec, none of them alone does."""
    host.run_expect([0], f"systemctl reset-failed {units}")
    host.run_expect([0], f"systemctl restart {units}")


@pytest.fixture
def orders_at_debug(host: Any) -> Iterator[None]:
    with profiles_at_debug(host, "orders"):
        yield
