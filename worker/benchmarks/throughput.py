#!/usr/bin/env python3
"""Warren throughput benchmark: one run, side by side, on the RabbitMQ at 127.0.0.1:5672.

1. no-op handler: warren-worker vs. a tight pika consumer (prefetch 1000, ack multiple every 250)
   vs. the tutorials' worker (prefetch 1, ack per message, sleep removed), in --rounds rounds of the three
   back to back; the ratios are medians over the rounds (on a small shared VM a fast or slow spell of the
   VM during one consumer's run must not decide a ratio, and such spells can span two rounds of three);
2. I/O-bound handler sleeping 50 ms: warren-worker at concurrency 32 (the tutorial worker: 1/0.05 s);
3. warren Publisher with confirms, bulk (pipelined).

Every consumer run and every publish uses N persistent JSON messages (--messages, default 100000) in a
throwaway vhost that is deleted at the end, on classic queues with version 2 storage as the appliance's
broker creates them (--queue-arguments '{"x-queue-type": "quorum"}' measures quorum queues instead, '{}'
the test broker's own default). Prints figures and a final `RESULT ...` line. Traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pika

import chart
from warren.outgoing import OutgoingMessage
from warren.publisher import DEFAULT_WINDOW, Publisher

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
HOST, PORT = "127.0.0.1", 5672
QUEUES = ("bench.tight", "bench.tutorial", "bench.warren", "bench.io", "bench.tutorial_io")
# The appliance's queues: classic (the topology) with the storage version the rabbitmq role sets as
# classic_queue.default_version (rabbitmq_classic_queue_version). The test broker on the host keeps
# RabbitMQ's own default (version 1 before 4.0), so the benchmark asks for the appliance's explicitly.
APPLIANCE_QUEUE_ARGUMENTS: Mapping[str, Any] = {"x-queue-version": 2}


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=120)


def params(vhost: str) -> pika.ConnectionParameters:
    return pika.ConnectionParameters(HOST, PORT, vhost, pika.PlainCredentials("guest", "guest"), heartbeat=60)


def declare(vhost: str, queue_arguments: Mapping[str, Any] = APPLIANCE_QUEUE_ARGUMENTS) -> None:
    """The bench exchange and, like the appliance's topology, each queue with its retry queue and DLQ.

    `queue_arguments` go to every queue: by default the appliance's classic queues.
    """
    extra = dict(queue_arguments)
    conn = pika.BlockingConnection(params(vhost))
    ch = conn.channel()
    ch.exchange_declare("bench", "direct", durable=True)
    for ex in ("warren.retry", "warren.dlx"):
        ch.exchange_declare(ex, "direct", durable=True)
    for q in QUEUES:
        ch.queue_declare(
            q,
            durable=True,
            arguments={"x-dead-letter-exchange": "warren.dlx", "x-dead-letter-routing-key": q, **extra},
        )
        ch.queue_bind(q, "bench", routing_key=q)
        ch.queue_declare(
            f"{q}.retry",
            durable=True,
            arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": q, **extra},
        )
        ch.queue_bind(f"{q}.retry", "warren.retry", routing_key=q)
        ch.queue_declare(f"{q}.dlq", durable=True, arguments=extra)
        ch.queue_bind(f"{q}.dlq", "warren.dlx", routing_key=q)
    conn.close()


def depth(vhost: str, queue: str) -> int:
    conn = pika.BlockingConnection(params(vhost))
    try:
        return int(conn.channel().queue_declare(queue, passive=True).method.message_count)
    finally:
        conn.close()


def check_drained(vhost: str, queues: Iterable[str]) -> None:
    """Every message was consumed: each queue and its DLQ are empty."""
    for q in queues:
        left = depth(vhost, q) + depth(vhost, f"{q}.dlq")
        assert left == 0, f"{left} messages left in {q} or its DLQ"


def broker_pid() -> int | None:
    """The pid of the broker's Erlang VM when it runs on this host (as under .ci/run), else None."""
    out = subprocess.run(
        ["rabbitmqctl", "-q", "eval", "os:getpid()."], capture_output=True, text=True, timeout=60
    ).stdout
    digits = "".join(c for c in out if c.isdigit())
    try:
        comm = Path(f"/proc/{digits}/comm").read_text().strip() if digits else ""
    except OSError:
        return None  # the node runs elsewhere (a container's pid namespace, another host)
    return int(digits) if comm.startswith("beam") else None


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def publish_measured(
    vhost: str, queue: str, n: int, broker: int | None = None
) -> tuple[float, float, float | None]:
    """Publish n order events through the bench exchange with confirms.

    Returns msg/s (confirmed), the share of one CPU this process spent meanwhile (building the
    messages, publishing, handling confirms), and the broker's share when its pid is given.
    """
    messages = (
        OutgoingMessage.json("bench", queue, {"order_id": i, "event": "order.created"}) for i in range(n)
    )
    broker_start = cpu_seconds(broker) if broker else 0.0
    cpu_start, start = time.process_time(), time.perf_counter()
    with Publisher(vhost=vhost, timeout=120) as pub:
        result = pub.publish_many(messages)
    elapsed = time.perf_counter() - start
    own = (time.process_time() - cpu_start) / elapsed
    assert result.ok and result.confirmed == n, result
    return n / elapsed, own, (cpu_seconds(broker) - broker_start) / elapsed if broker else None


def with_broker_cost(broker: int | None, n: int, consume: Callable[[], float]) -> tuple[float, float | None]:
    """`consume()`'s msg/s, and the broker's CPU per message in µs meanwhile when its pid is given.

    The broker's figure covers the consumer's connection set-up too (about a millisecond against seconds of
    delivering): it tells a round where the broker delivered cheaply, and the tight consumer's rate with it,
    from one where it did not (docs/benchmarks.md).
    """
    before = cpu_seconds(broker) if broker else 0.0
    rate = consume()
    return rate, (cpu_seconds(broker) - before) / n * 1e6 if broker else None


def broker_note(us: float | None) -> str:
    """The round line's note of the broker's CPU per message, empty when it was not measured."""
    return "" if us is None else f" (broker {us:.0f} us/msg)"


def publish(vhost: str, queue: str, n: int) -> float:
    """Publish n order events through the bench exchange; returns msg/s (confirmed)."""
    return publish_measured(vhost, queue, n)[0]


# ---- reference consumers (run in their own process: `throughput.py --reference KIND ...`) ----------


def reference_consumer(kind: str, vhost: str, queue: str, n: int, sleep: float) -> None:
    """Consume exactly n messages, print {"elapsed": s} measured from basic.consume-ok to the last ack."""
    conn = pika.BlockingConnection(params(vhost))
    ch = conn.channel()
    tight = kind == "tight"
    ch.basic_qos(prefetch_count=1000 if tight else 1)
    count = 0
    out = open(os.devnull, "w")  # noqa: SIM115 - the tutorial prints two lines per message; closed below

    def on_message(channel: Any, method: Any, _props: Any, body: bytes) -> None:
        nonlocal count
        count += 1
        if tight:
            if count % 250 == 0 or count == n:
                channel.basic_ack(method.delivery_tag, multiple=True)
        else:
            event = json.loads(body)
            print(f"Received event {event}", file=out)
            print(f"Processing event type {event['event']}", file=out)
            if sleep:
                time.sleep(sleep)
            channel.basic_ack(method.delivery_tag)
        if count == n:
            channel.stop_consuming()

    ch.basic_consume(queue, on_message)
    start = time.perf_counter()
    ch.start_consuming()
    elapsed = time.perf_counter() - start
    conn.close()
    out.close()
    print(json.dumps({"elapsed": elapsed}))


def reference_command(kind: str, vhost: str, queue: str, n: int, sleep: float = 0.0) -> list[str]:
    """The command that runs a reference consumer in its own process (`--reference KIND ...`)."""
    return [
        sys.executable,
        __file__,
        "--reference",
        kind,
        "--vhost",
        vhost,
        "--queue",
        queue,
        "--messages",
        str(n),
        "--sleep",
        str(sleep),
    ]


def run_reference(kind: str, vhost: str, queue: str, n: int, sleep: float = 0.0) -> float:
    proc = subprocess.run(
        reference_command(kind, vhost, queue, n, sleep),
        capture_output=True,
        text=True,
        timeout=3600,
        check=True,
    )
    return n / float(json.loads(proc.stdout.strip().splitlines()[-1])["elapsed"])


# ---- warren-worker --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def acked(port: int, queue: str) -> float:
    text = urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=5).read().decode()
    prefix = f'warren_messages_total{{outcome="acked",queue="{queue}"}} '
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return 0.0


def write_config(
    tmp: Path, vhost: str, queue: str, handler: str, prefetch: int, concurrency: int, log_level: str
) -> Path:
    """A worker profile for the local broker (guest) with a bench_handlers handler for every key."""
    (tmp / "password").write_text("guest")
    config = tmp / f"{queue}.toml"
    config.write_text(
        f"""[broker]
endpoints = ["amqp://{HOST}:{PORT}"]
vhost = "{vhost}"
username = "guest"
password_file = "{tmp / "password"}"

[consumer]
queue = "{queue}"
prefetch = {prefetch}
concurrency = {concurrency}

[handlers]
"#" = "bench_handlers:{handler}"

[logging]
level = "{log_level}"
"""
    )
    return config


def start_warren(
    config: Path, log: Path, prefix: Sequence[str] = (), env: Mapping[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    """warren-worker on `config`, run under the `prefix` command if any, output in `log`, and the free
    loopback port its metrics endpoint listens on (bench_handlers importable, `env` added)."""
    port = free_port()
    command = [
        *prefix,
        str(BIN / "warren-worker"),
        "--config",
        str(config),
        "--metrics-listen",
        f"{HOST}:{port}",
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(HERE), **(env or {})},
        )
    return proc, port


def run_warren(
    vhost: str, queue: str, n: int, handler: str, prefetch: int, concurrency: int, tmp: Path, log_level: str
) -> float:
    config = write_config(tmp, vhost, queue, handler, prefetch, concurrency, log_level)
    log = tmp / f"{queue}.log"
    # READY=1 over sd_notify marks "consuming" without depending on the log level.
    notify_path = tmp / f"{queue}.notify"
    notify_path.unlink(missing_ok=True)  # left by this queue's previous round
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    notify.settimeout(60)
    proc, port = start_warren(config, log, env={"NOTIFY_SOCKET": str(notify_path)})
    try:
        try:
            while not notify.recv(4096).startswith(b"READY=1"):
                pass
        except TimeoutError:
            raise SystemExit(f"warren-worker did not start:\n{log.read_text()}") from None
        finally:
            notify.close()
        start = time.perf_counter()
        deadline = time.monotonic() + max(600, n / 50)
        # A scrape costs the worker CPU, so poll sparingly until the last tenth (half the time the rate so
        # far says that takes, at most 0.25 s), then every 20 ms so that the end is seen within 20 ms.
        while (done := acked(port, queue)) < n:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"warren-worker stopped or stalled:\n{log.read_text()[-2000:]}")
            rate = done / (time.perf_counter() - start)
            early = done < 0.9 * n and rate > 0
            time.sleep(min(0.25, max(0.02, (0.9 * n - done) / rate / 2)) if early else 0.02)
        elapsed = time.perf_counter() - start
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    return n / elapsed


def commit() -> str:
    """The commit measured, marked when the tree has changes on top of it."""
    git = ["git", "-C", str(HERE)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    if head.returncode != 0:
        return "unknown commit"
    dirty = subprocess.run([*git, "diff", "--quiet", "HEAD"], check=False).returncode != 0
    return head.stdout.strip() + (" + local changes" if dirty else "")


def queue_arguments(text: str) -> dict[str, Any]:
    """--queue-arguments: a JSON object, or argparse says why not."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object of x-arguments")
    return value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=100_000, help="messages per run (default 100000)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds of the no-op comparison (default 5)")
    ap.add_argument(
        "--log-level", default="INFO", help="warren-worker log level (DEBUG: a line per acked message)"
    )
    ap.add_argument(
        "--queue-arguments",
        type=queue_arguments,
        default=APPLIANCE_QUEUE_ARGUMENTS,
        metavar="JSON",
        help='x-arguments for every queue, e.g. \'{"x-queue-type": "quorum"}\' '
        f"(default: {json.dumps(APPLIANCE_QUEUE_ARGUMENTS)}, the appliance's classic queues)",
    )
    ap.add_argument(
        "--chart",
        type=Path,
        metavar="PNG",
        help="draw the run's chart into PNG and keep its figures beside it as JSON (chart.py redraws them)",
    )
    ap.add_argument("--reference", choices=("tight", "tutorial"), help=argparse.SUPPRESS)
    ap.add_argument("--vhost", help=argparse.SUPPRESS)
    ap.add_argument("--queue", help=argparse.SUPPRESS)
    ap.add_argument("--sleep", type=float, default=0.0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.reference:
        reference_consumer(args.reference, args.vhost, args.queue, args.messages, args.sleep)
        return

    n = args.messages
    io_tutorial_n = min(n, 100)  # 50 ms each, one at a time: 100 messages already take 5 s
    vhost = f"warren-bench-{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        try:
            declare(vhost, args.queue_arguments)
        except pika.exceptions.ChannelClosedByBroker as exc:
            raise SystemExit(f"cannot declare the bench queues: {exc.reply_code} {exc.reply_text}") from None
        print(
            f"warren benchmark: {n} persistent JSON messages per run, vhost {vhost}, queue arguments "
            f"{json.dumps(args.queue_arguments) if args.queue_arguments else 'none (the broker default)'}",
            flush=True,
        )

        noop_queues = ("bench.tight", "bench.tutorial", "bench.warren")
        broker = broker_pid()
        publishes: list[tuple[float, float, float | None]] = []
        rounds: list[tuple[float, float, float]] = []
        with tempfile.TemporaryDirectory(prefix="warren-bench-") as tmpdir:
            tmp = Path(tmpdir)
            print(
                "1. no-op: tight pika consumer (prefetch 1000, ack multiple/250), tutorial worker "
                "(prefetch 1, ack each, no sleep), warren-worker (prefetch 1000, concurrency 8)",
                flush=True,
            )
            for r in range(1, args.rounds + 1):
                publishes += [publish_measured(vhost, q, n, broker) for q in noop_queues]
                tight, tight_broker = with_broker_cost(
                    broker, n, lambda: run_reference("tight", vhost, "bench.tight", n)
                )
                tutorial, tutorial_broker = with_broker_cost(
                    broker, n, lambda: run_reference("tutorial", vhost, "bench.tutorial", n)
                )
                warren, warren_broker = with_broker_cost(
                    broker,
                    n,
                    lambda: run_warren(vhost, "bench.warren", n, "noop", 1000, 8, tmp, args.log_level),
                )
                rounds.append((tight, tutorial, warren))
                print(
                    f"   round {r}: tight {tight:,.0f} msg/s{broker_note(tight_broker)}, "
                    f"tutorial {tutorial:,.0f} msg/s{broker_note(tutorial_broker)}, "
                    f"warren-worker {warren:,.0f} msg/s{broker_note(warren_broker)} = "
                    f"{warren / tight:.2f}x tight, {warren / tutorial:.1f}x tutorial",
                    flush=True,
                )
            vs_tight = statistics.median(w / t for t, _, w in rounds)
            vs_tutorial = statistics.median(w / u for _, u, w in rounds)
            print(
                f"1. warren-worker no-op, median of {len(rounds)} rounds: {vs_tight:.2f}x tight, "
                f"{vs_tutorial:.1f}x tutorial",
                flush=True,
            )

            publishes.append(publish_measured(vhost, "bench.io", n, broker))
            publish(vhost, "bench.tutorial_io", io_tutorial_n)
            pub_rates = [rate for rate, _, _ in publishes]
            publish_rate = statistics.mean(pub_rates)
            print(
                f"3. publisher, confirms, bulk (window {DEFAULT_WINDOW}): {publish_rate:,.0f} msg/s, mean of "
                f"{len(pub_rates)} publishes (range {min(pub_rates):,.0f}-{max(pub_rates):,.0f})",
                flush=True,
            )
            # Which side sets the pace: a publisher short of a whole CPU is waiting for the broker's confirms.
            own = statistics.mean(share for _, share, _ in publishes)
            brokers = [share for _, _, share in publishes if share is not None]
            print(
                f"   meanwhile the publishing process used {own:.0%} of one CPU"
                + (
                    f", the broker {statistics.mean(brokers):.0%}"
                    if brokers
                    else " (broker not on this host)"
                )
                + f" ({os.cpu_count()} CPUs)",
                flush=True,
            )

            io = run_warren(vhost, "bench.io", n, "sleep50", 64, 32, tmp, args.log_level)
            tutorial_io = run_reference("tutorial", vhost, "bench.tutorial_io", io_tutorial_n, sleep=0.05)
            print(
                f"2. 50 ms handler: warren-worker concurrency 32: {io:,.0f} msg/s; "
                f"tutorial worker: {tutorial_io:,.1f} msg/s ({io_tutorial_n} messages)",
                flush=True,
            )
        check_drained(vhost, QUEUES)
    finally:
        rabbitmqctl("delete_vhost", vhost)
    print(
        f"RESULT noop_vs_tight={vs_tight:.2f} noop_vs_tutorial={vs_tutorial:.1f} "
        f"io_msgs_per_s={io:.0f} publish_msgs_per_s={publish_rate:.0f}"
    )
    if args.chart:
        chart.save_and_draw(
            chart.Run(
                date=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"),
                commit=commit(),
                machine=f"{platform.machine()}, {os.cpu_count()} vCPUs, Python {platform.python_version()}",
                rounds=[list(r) for r in rounds],
                result={
                    "noop_vs_tight": vs_tight,
                    "noop_vs_tutorial": vs_tutorial,
                    "io_msgs_per_s": io,
                    "publish_msgs_per_s": publish_rate,
                },
            ),
            args.chart,
        )
        print(f"chart: {args.chart} (figures: {args.chart.with_suffix('.json')})")


if __name__ == "__main__":
    main()
