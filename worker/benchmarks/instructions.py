#!/usr/bin/env python3
"""Instructions per message, counted by valgrind's callgrind: warren-worker vs. the tight pika consumer.

Why it exists: on a small shared VM, msg/s moves by +-30 % and CPU time per message by +-15 % between runs of
the same code (throughput.py); the instructions a consumer process executes per message repeat to about 1 %,
so they judge a change in the worker, or in pika, without interleaved runs. They are not time:
cache misses and the broker are not in them.

Each consumer runs twice under callgrind, on N1 and N2 messages of the same queue;
(Ir(N2) - Ir(N1)) / (N2 - N1) cancels start-up (imports, connection) and shutdown. Consumers:

* select: a bare pika SelectConnection that acks every 250th message, pika's own cost per message;
* tight: throughput.py's tight reference (BlockingConnection, prefetch 1000, ack multiple every 250);
* warren: warren-worker with the no-op handler (prefetch 1000, concurrency 8), at INFO (production: no line
  per acked message since issue 26; before, one) and at WARNING;
* hot path: hot_path.py, Warren's own per-message path without broker or pika, at INFO and WARNING (on
  N1 * 2 and N2 * 2 deliveries: it needs no broker, so more are cheap). warren minus hot path is what
  pika, the pool hand-off and the I/O loop cost the worker.

Where the consumer, not the broker, is the bottleneck, tight/warren is the no-op msg/s ratio of issue 3
(goal >= 0.8x). The tutorial worker is left out: one round trip per message bounds it, not its CPU.
Needs valgrind (Debian: apt-get install valgrind). Traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import pika

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # throughput, bench_handlers

import throughput as tp  # noqa: E402 - after the sys.path entry

WARREN_LEVELS = ("INFO", "WARNING")


def callgrind(tmp: Path, label: str) -> list[str]:
    """valgrind's command prefix; its report goes to a file so the consumer's own stderr stays apart."""
    return [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        f"--log-file={tmp / label}.valgrind",
    ]


def instructions(tmp: Path, label: str) -> int:
    report = (tmp / f"{label}.valgrind").read_text()
    found = re.search(r"Collected : (\d+)", report)
    if found is None:
        raise SystemExit(f"no instruction count in valgrind's report for {label}:\n{report[-2000:]}")
    return int(found.group(1))


# ---- the bare SelectConnection consumer (run in its own process: `instructions.py --select ...`) -----


def select_consumer(vhost: str, queue: str, n: int) -> None:
    """Consume exactly n messages, acking every 250th with `multiple`, and close."""
    count = 0

    def on_message(channel: Any, method: Any, _props: Any, _body: bytes) -> None:
        nonlocal count
        count += 1
        if count % 250 == 0 or count == n:
            channel.basic_ack(method.delivery_tag, multiple=True)
        if count == n:
            connection.close()

    def on_channel(channel: Any) -> None:
        channel.basic_qos(prefetch_count=1000, callback=lambda _ok: channel.basic_consume(queue, on_message))

    connection = pika.SelectConnection(
        tp.params(vhost),
        on_open_callback=lambda conn: conn.channel(on_open_callback=on_channel),
        on_open_error_callback=lambda _conn, err: sys.exit(f"cannot connect: {err}"),
        on_close_callback=lambda conn, _reason: conn.ioloop.stop(),
    )
    connection.ioloop.start()
    if count != n:
        sys.exit(f"connection closed after {count} of {n} messages")


# ---- one measured run per consumer --------------------------------------------------------------


def run_reference(kind: str, vhost: str, queue: str, n: int, tmp: Path) -> int:
    """A reference consumer (select or tight) on n messages under callgrind; its instruction count."""
    label = f"{kind}-{n}"
    if kind == "select":
        command = [sys.executable, __file__, "--select", "--vhost", vhost, "--queue", queue, "--n", str(n)]
    else:
        command = tp.reference_command(kind, vhost, queue, n)
    return counted(tmp, label, command)


def counted(tmp: Path, label: str, command: list[str]) -> int:
    """Run command to its end under callgrind; its instruction count."""
    proc = subprocess.run(callgrind(tmp, label) + command, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"{label} failed:\n{proc.stderr[-2000:]}")
    return instructions(tmp, label)


def run_hot_path(level: str, n: int, tmp: Path) -> int:
    """hot_path.py on n deliveries (after its own warm-up) under callgrind; its instruction count."""
    hot_path = str(HERE / "hot_path.py")
    command = [sys.executable, hot_path, "--messages", str(n), "--runs", "1", "--log-level", level]
    return counted(tmp, f"hot-path-{level}-{n}", command)


def scraped_at_least(port: int, queue: str, n: int) -> bool:
    try:
        return tp.acked(port, queue) >= n
    except OSError:  # endpoint not up yet
        return False


def run_warren(vhost: str, queue: str, n: int, level: str, tmp: Path) -> int:
    """warren-worker until n acks, then SIGTERM (drain, close, exit 0) and its instruction count."""
    label = f"warren-{level}-{n}"
    config = tp.write_config(tmp, vhost, queue, "noop", 1000, 8, level)
    log = tmp / f"{label}.log"
    proc, port = tp.start_warren(config, log, prefix=callgrind(tmp, label))
    try:
        # Scrapes cost the worker instructions: ask its metrics endpoint only once the queue is empty,
        # so both runs pay about the same few scrapes and the difference keeps none of them.
        deadline = time.monotonic() + 1800
        while tp.depth(vhost, queue) > 0 or not scraped_at_least(port, queue, n):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"warren-worker stopped or stalled:\n{log.read_text()[-2000:]}")
            time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        status = proc.wait(timeout=600)
    if status != 0:
        raise SystemExit(f"warren-worker exited {status}:\n{log.read_text()[-2000:]}")
    return instructions(tmp, label)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n1", type=int, default=1000, help="messages in the shorter run (default 1000)")
    ap.add_argument("--n2", type=int, default=4000, help="messages in the longer run (default 4000)")
    ap.add_argument("--select", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--vhost", help=argparse.SUPPRESS)
    ap.add_argument("--queue", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.select:
        select_consumer(args.vhost, args.queue, args.n)
        return
    if not 0 < args.n1 < args.n2:
        ap.error("need 0 < --n1 < --n2")
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")

    vhost = f"warren-bench-{uuid.uuid4().hex[:8]}"
    tp.rabbitmqctl("add_vhost", vhost)
    per_message: dict[str, float] = {}
    try:
        tp.rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        tp.declare(vhost)
        print(f"instructions per message (callgrind), runs of {args.n1} and {args.n2} messages in {vhost}")
        consumers: list[tuple[str, str, str | None]] = [
            ("select", "bench.tight", None),
            ("tight", "bench.tight", None),
        ]
        consumers += [("warren", "bench.warren", level) for level in WARREN_LEVELS]
        with tempfile.TemporaryDirectory(prefix="warren-bench-") as tmpdir:
            tmp = Path(tmpdir)
            for kind, queue, level in consumers:
                counts = []
                for n in (args.n1, args.n2):
                    tp.publish(vhost, queue, n)
                    if level is None:
                        counts.append(run_reference(kind, vhost, queue, n, tmp))
                    else:
                        counts.append(run_warren(vhost, queue, n, level, tmp))
                report(per_message, kind if level is None else f"{kind} {level}", counts, args.n2 - args.n1)
            for level in WARREN_LEVELS:
                counts = [run_hot_path(level, n * 2, tmp) for n in (args.n1, args.n2)]
                report(per_message, f"hot path {level}", counts, (args.n2 - args.n1) * 2)
        tp.check_drained(vhost, {queue for _, queue, _ in consumers})
    finally:
        tp.rabbitmqctl("delete_vhost", vhost)
    tight, info, warning = per_message["tight"], per_message["warren INFO"], per_message["warren WARNING"]
    print(
        f"RESULT select_ir={per_message['select']:.0f} tight_ir={tight:.0f} warren_info_ir={info:.0f} "
        f"warren_warning_ir={warning:.0f} hot_path_info_ir={per_message['hot path INFO']:.0f} "
        f"hot_path_warning_ir={per_message['hot path WARNING']:.0f} warren_info_vs_tight={tight / info:.2f} "
        f"warren_warning_vs_tight={tight / warning:.2f}"
    )


def report(per_message: dict[str, float], name: str, counts: list[int], messages: int) -> None:
    per_message[name] = (counts[1] - counts[0]) / messages
    print(f"   {name:<16} {per_message[name]:>10,.0f} instructions/msg", flush=True)


if __name__ == "__main__":
    main()
