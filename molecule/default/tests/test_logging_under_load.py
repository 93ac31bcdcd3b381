"""Under load the journal keeps every line that matters (issue 26): 30,000 order events, then malformed ones.

journald's default rate limit (10,000 lines per 30 s per unit) used to drop most worker lines at this volume,
the dead-letter lines of malformed messages published right after the flood included. The deployment must
keep each of those, write no line per success, and count every message exactly in the sd_notify status.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from conftest import queue_depths

ORDERS = ("orders-1", "orders-2")
UNITS = " ".join(f"warren-worker@{i}" for i in ORDERS)
VALID, MALFORMED = 30_000, 20
REFUSED_BY_HANDLER = MALFORMED // 2  # the even ones: an unknown event type, a handler failure each
PUBLISH = "warren-publish --username warren --password-file /etc/warren/credentials/amqp-password"
# What the role sets by default (warren_worker_log_rate_limit_*).
RATE_LIMIT_INTERVAL_S, RATE_LIMIT_BURST = 10, 100000
STATUS = re.compile(r"processed=(\d+) failed=(\d+) retried=(\d+) dead_lettered=(\d+) in_flight=(\d+)")


def status_counts(host: Any) -> tuple[int, int, int, int]:
    """processed, failed, retried, dead_lettered summed over the orders instances (their sd_notify status)."""
    totals = [0, 0, 0, 0]
    for instance in ORDERS:
        text = host.run_expect([0], f"systemctl show -p StatusText --value warren-worker@{instance}").stdout
        match = STATUS.search(text)
        assert match, f"{instance}: no counters in its status {text!r}"
        for i in range(4):
            totals[i] += int(match.group(i + 1))
    return totals[0], totals[1], totals[2], totals[3]


def journal(host: Any, since: float, *options: str) -> list[str]:
    out = host.run_expect(
        [0], f"journalctl -u 'warren-worker@orders-*' --since @{since:.3f} --no-pager -o cat " + " ".join(options)
    ).stdout
    return out.splitlines()


def wait_for(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.5)
    return value


def test_units_set_journald_rate_limit_deliberately(host: Any) -> None:
    for instance in ORDERS:
        shown = host.run_expect(
            [0], f"systemctl show -p LogRateLimitIntervalUSec -p LogRateLimitBurst warren-worker@{instance}"
        ).stdout.split()
        assert sorted(shown) == [
            f"LogRateLimitBurst={RATE_LIMIT_BURST}",
            f"LogRateLimitIntervalUSec={RATE_LIMIT_INTERVAL_S}s",
        ]


def test_flood_then_malformed_messages_every_failure_in_the_journal_every_message_counted(host: Any) -> None:
    run = uuid.uuid4().hex[:8]
    bad_ids = {f"load-{run}-bad-{i}" for i in range(MALFORMED)}
    # Fresh counters: a Type=notify restart returns once both instances consume again.
    host.run_expect([0], f"systemctl restart {UNITS}")
    assert status_counts(host) == (0, 0, 0, 0)
    # The flood first, then the malformed messages, as an operator saw them lost: half lack the required
    # order_id (dead-lettered before the handler), half carry an unknown event type (the handler refuses them).
    script = """
import json, sys
run, valid, bad = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def line(i, body):
    return json.dumps({"routing_key": "order.created", "message_id": f"load-{run}-{i}", "body": body}) + "\\n"
with open(f"/tmp/load-{run}.jsonl", "w") as out:
    out.writelines(line(i, {"order_id": i, "event": "order.created"}) for i in range(valid))
    out.writelines(
        line(f"bad-{i}", {"event": "order.created"} if i % 2 else {"order_id": i, "event": "order.shredded"})
        for i in range(bad)
    )
"""
    host.run_expect([0], "python3 -c %s %s %s %s", script, run, str(VALID), str(MALFORMED))
    start = float(host.run_expect([0], "date +%s.%N").stdout)
    try:
        host.run_expect([0], f"{PUBLISH} --exchange events --file /tmp/load-{run}.jsonl")
    finally:
        host.run(f"rm -f /tmp/load-{run}.jsonl")

    # Exact counts: every message is in the instances' counters (their status is refreshed every 5 s).
    wait_for(lambda: queue_depths(host)["order.events"][:2] == (0, 0), 180, "order.events drained")
    wait_for(lambda: status_counts(host)[0] + status_counts(host)[3] >= VALID + MALFORMED, 30, "counters")
    assert status_counts(host) == (VALID, REFUSED_BY_HANDLER, 0, MALFORMED)

    # Every dead-letter line is in the journal, as an error, and successes wrote no line each.
    def dead_letter_lines() -> list[str] | None:
        lines = [x for x in journal(host, start, "-p", "err") if "outcome=dead-lettered" in x and f"load-{run}" in x]
        return lines if len(lines) >= MALFORMED else None

    dead = wait_for(dead_letter_lines, 30, "the dead-letter lines")
    assert {line.split("message_id=")[1].split()[0] for line in dead} == bad_ids
    assert all(line.startswith("ERROR warren.outcome: message dead-lettered ") for line in dead)
    lines = journal(host, start)
    assert len(lines) < 1000, f"{len(lines)} lines for {VALID + MALFORMED} messages: successes must not write one each"

    # journald reports a suppression when a unit's next line comes in a later window: restart the instances
    # once the flood's window is over, so that each writes its stop lines and its final summary.
    time.sleep(max(0.0, start + RATE_LIMIT_INTERVAL_S + 1 - time.time()))
    host.run_expect([0], f"systemctl restart {UNITS}")

    def final_summaries() -> list[str] | None:
        lines = [x for x in journal(host, start) if "warren.summary: final summary" in x]
        return lines if len(lines) >= len(ORDERS) else None

    finals = wait_for(final_summaries, 30, "both instances' final summary lines")
    assert sum(int(re.search(r"total_acked=(\d+)", x).group(1)) for x in finals) == VALID
    assert sum(int(re.search(r"total_dead_lettered=(\d+)", x).group(1)) for x in finals) == MALFORMED
    everything = host.run_expect([0], f"journalctl --since @{start:.3f} --no-pager -o cat").stdout
    assert not re.findall(r"Suppressed \d+ messages from warren-worker@.*", everything)
