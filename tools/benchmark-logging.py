#!/usr/bin/env python3
"""Benchmark (prints figures; not a test): what logging costs the demo appliance, end to end.

Deploys `site.yml` into a fresh systemd container (as `make demo` does), then measures how fast the two
`orders` instances drain a backlog of --messages order events, at each level of --levels, interleaved in
--rounds rounds (the order alternates, so a slow spell of the VM does not favour one level). Default: INFO,
the production level, against ERROR, which writes no line at all in a run without failures ("logging
off"). Each measurement: stop the instances, set the profile's level, publish the backlog with
warren-publish, start the instances, and time the queue from its first delivery to empty (polled in the
container every 20 ms); journald's CPU and the lines the instances wrote are counted too. Prints each
round, the medians and a final `RESULT ...` line. The container is removed afterwards (--keep keeps it).

Usage: .venv/bin/python tools/benchmark-logging.py [--messages 100000] [--rounds 5] [--levels INFO,ERROR]
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
UNITS = "warren-worker@orders-1 warren-worker@orders-2"
PROFILE = "/etc/warren/orders.toml"
PUBLISH = "warren-publish --username warren --password-file /etc/warren/credentials/amqp-password"

# Runs in the container with the worker's venv: the time from the queue's first delivery to empty.
POLLER = """
import configparser, sys, time
import pika
c = configparser.RawConfigParser()
c.read("/root/.rabbitmqadmin.conf")
user, password = c["default"]["username"], c["default"]["password"]
params = pika.ConnectionParameters("127.0.0.1", 5672, "/", pika.PlainCredentials(user, password))
channel = pika.BlockingConnection(params).channel()
queue, total, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
first, deadline = None, time.monotonic() + timeout
print("polling", flush=True)
while time.monotonic() < deadline:
    ready = channel.queue_declare(queue, passive=True).method.message_count
    now = time.monotonic()
    if first is None and ready < total:
        first = now
    if first is not None and ready == 0:
        print(f"{now - first:.3f}", flush=True)
        sys.exit(0)
    time.sleep(0.02)
sys.exit(1)
"""

JOURNALD_CPU = "awk '{print $14 + $15}' /proc/$(pidof systemd-journald)/stat"


def sh(*args: str, check: bool = True, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), check=check, text=True, capture_output=True, **kw)  # type: ignore[call-overload]


class Container:
    def __init__(self, name: str) -> None:
        self.name = name

    def run(self, command: str, check: bool = True) -> str:
        proc = sh("docker", "exec", self.name, "bash", "-c", command, check=False)
        if check and proc.returncode != 0:
            tail = "\n".join((proc.stderr.strip() or proc.stdout).splitlines()[-5:])
            raise RuntimeError(f"{command!r} failed ({proc.returncode}): {tail}")
        return proc.stdout

    def depth(self, queue: str) -> int:
        """Ready and unacknowledged messages, from the queue itself."""
        out = self.run("rabbitmqctl list_queues -q --no-table-headers name messages")
        depths = dict(line.split("\t") for line in out.splitlines())
        return int(depths[queue])


def deploy(name: str, work: Path) -> None:
    lib = PROJECT / "tools" / "lib.sh"
    script = f"source {shlex.quote(str(lib))}; warren_start_container {shlex.quote(name)} && " + (
        f"warren_container_inventory {shlex.quote(name)} {shlex.quote(str(work / 'inventory'))} "
        f"{shlex.quote(str(PROJECT))}"
    )
    subprocess.run(["bash", "-c", script], check=True)
    env = {**os.environ, "ANSIBLE_CONFIG": str(PROJECT / "ansible.cfg")}
    log = work / "converge.log"
    with open(log, "w") as out:
        rc = subprocess.call(
            [str(PROJECT / ".venv" / "bin" / "ansible-playbook"), "-i", str(work / "inventory" / "hosts.yml"),
             "site.yml"],
            cwd=PROJECT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    if rc:
        sys.exit(f"converge failed, see {log}:\n" + "".join(log.read_text().splitlines(True)[-30:]))


def measure(c: Container, level: str, messages: int, batch: str) -> dict[str, float]:
    c.run(f"systemctl stop {UNITS}")
    c.run(f"sed -i 's/^level = .*/level = \"{level}\"/' {PROFILE}")
    c.run(f"{PUBLISH} --exchange events --routing-key order.created --file {batch}")
    assert c.depth("order.events") == messages, "the backlog is not what was published"
    since = c.run("date +%s.%N").strip()
    cpu_before = float(c.run(JOURNALD_CPU))
    poller = subprocess.Popen(
        ["docker", "exec", "-i", c.name, "/opt/warren/venv/bin/python", "-c", POLLER, "order.events",
         str(messages), "600"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert poller.stdout is not None and poller.stdout.readline().strip() == "polling"
    c.run(f"systemctl start {UNITS}")
    elapsed = float(poller.stdout.readline())
    assert poller.wait(timeout=30) == 0
    for _ in range(100):  # the last prefetched messages: acked within moments
        if c.depth("order.events") == 0:
            break
        time.sleep(0.1)
    ticks = float(c.run(JOURNALD_CPU)) - cpu_before
    lines = int(c.run(f"journalctl -u 'warren-worker@orders-*' --since @{since} -o cat --no-pager | wc -l"))
    hz = int(c.run("getconf CLK_TCK"))
    return {"msgs_per_s": messages / elapsed, "seconds": elapsed, "journald_cpu_s": ticks / hz, "lines": lines}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--levels", default="INFO,ERROR", help="comma-separated worker log levels to compare")
    ap.add_argument("--name", default="warren-bench-logging", help="container name (removed at the end)")
    ap.add_argument("--keep", action="store_true", help="keep the container")
    args = ap.parse_args()
    levels = args.levels.split(",")
    c = Container(args.name)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            print(f"deploying site.yml into container {args.name} ...", flush=True)
            deploy(args.name, Path(tmp))
            batch = "/root/bench-orders.jsonl"
            c.run(
                "python3 -c 'import json, sys\n"
                "for i in range(int(sys.argv[1])):\n"
                '    print(json.dumps({"order_id": i, "event": "order.created"}))\n'
                f"' {args.messages} > {batch}"
            )
            results: dict[str, list[dict[str, float]]] = {level: [] for level in levels}
            for r in range(args.rounds):
                order = levels if r % 2 == 0 else levels[::-1]
                for level in order:
                    m = measure(c, level, args.messages, batch)
                    results[level].append(m)
                    print(
                        f"round {r + 1} {level:7s} {m['msgs_per_s']:8.0f} msg/s ({m['seconds']:.1f} s), "
                        f"journald CPU {m['journald_cpu_s']:.2f} s, {m['lines']} lines from the orders instances",
                        flush=True,
                    )
            print(f"\nmedians over {args.rounds} rounds, {args.messages} messages each:")
            medians = {}
            for level in levels:
                rate = statistics.median(m["msgs_per_s"] for m in results[level])
                cpu = statistics.median(m["journald_cpu_s"] for m in results[level])
                lines = statistics.median(m["lines"] for m in results[level])
                medians[level] = rate
                print(f"  {level:7s} {rate:8.0f} msg/s, journald CPU {cpu:.2f} s, {lines:.0f} lines")
            # Each ratio is the median of the rounds' own ratios: a slow spell of the VM hits both sides of a round.
            base = levels[-1]
            fields = " ".join(f"{level.lower()}_msgs_per_s={medians[level]:.0f}" for level in levels)
            ratio = {
                level: statistics.median(
                    m["msgs_per_s"] / b["msgs_per_s"] for m, b in zip(results[level], results[base], strict=True)
                )
                for level in levels[:-1]
            }
            for level in levels[:-1]:
                print(f"  {level} vs {base}: {ratio[level]:.2f} (median of the rounds' ratios)")
            ratios = " ".join(f"{level.lower()}_vs_{base.lower()}={ratio[level]:.2f}" for level in levels[:-1])
            print(f"RESULT messages={args.messages} rounds={args.rounds} {fields} {ratios}")
        finally:
            if not args.keep:
                sh("docker", "rm", "-f", args.name, check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
