"""Bad input on the running cluster: asking for classic queues where quorum queues hold messages stops the play
before the import, says what to do, and leaves the queues and their messages as they were."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

from conftest import queues, run_json

REPO_DIR = Path(__file__).resolve().parents[3]


def test_a_type_change_on_a_queue_holding_messages_is_refused_before_damage(first: Any) -> None:
    for n in range(3):
        first.run_expect(
            [0],
            f"rabbitmqadmin publish exchange=amq.default routing_key=jobs.dlq payload='{{\"n\":{n}}}' "
            "properties='{\"delivery_mode\":2}'",
        )
    # The play reads the counts from the management API, whose statistics lag a few seconds behind.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        listed = run_json(first, "rabbitmqadmin -f raw_json list queues name messages")
        if {q["name"]: q.get("messages") for q in listed}.get("jobs.dlq") == 3:
            break
        time.sleep(1)
    try:
        result = subprocess.run(
            [
                "ansible-playbook",
                "-i",
                os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"]),
                str(REPO_DIR / "playbooks" / "topology.yml"),
                "-e",
                "rabbitmq_topology_queue_type=classic",
            ],
            cwd=REPO_DIR,
            # One JSON line per result: the stop message is matched whole, never wrapped.
            env={**os.environ, "ANSIBLE_CALLBACK_RESULT_FORMAT": "json"},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert result.returncode != 0, result.stdout[-3000:]
        # Failures go to stderr. Whatever the callback's format, line wrapping and colours: the words in order.
        output = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr).split())
        assert "queue 'jobs.dlq': type quorum on the broker, classic in the topology; 3 message(s)" in output, (
            result.stderr[-3000:]
        )
        assert "rabbitmq_topology_migrate_queues=true" in output
        after = queues(first)
        assert after["jobs.dlq"]["type"] == "quorum"
        assert after["jobs.dlq"]["messages"] == 3
    finally:
        first.run_expect([0], "rabbitmqctl purge_queue jobs.dlq")
