#!/usr/bin/env python3
"""Cluster benchmark: classic queue on one node vs. quorum queue replicated on three, on the same run, same node,
same client code. tools/benchmark-cluster.sh runs it on the first broker of the cluster scenario, on stdin, with the
workers' venv Python (which has pika).

For each queue type, in a throwaway queue of the default vhost (deleted at the end):
  1. sustained: --messages persistent messages published with confirms (--window unconfirmed at most) while one
     consumer (prefetch 200, ack each) takes them; throughput = messages / (last consumed - first published);
  2. fixed rate: --rate messages a second for --seconds; end-to-end latency (publish to consumed) p50 and p99.
The classic queue lives on this node only, as on the single-node appliance: the same data path. Prints figures
and the quorum/classic ratios. Traffic stays on 127.0.0.1 and the cluster's own network.
"""

from __future__ import annotations

import argparse
import configparser
import statistics
import threading
import time
import uuid

import pika


def admin_parameters() -> pika.ConnectionParameters:
    config = configparser.RawConfigParser()
    config.read("/root/.rabbitmqadmin.conf")
    credentials = pika.PlainCredentials(config["default"]["username"], config["default"]["password"])
    return pika.ConnectionParameters("127.0.0.1", credentials=credentials, heartbeat=30)


def publish(params: pika.ConnectionParameters, queue: str, count: int, rate: float, window: int) -> float:
    """Publishes `count` persistent messages with confirms, at most `window` unconfirmed, at `rate` a second
    (0: as fast as confirms allow); returns the monotonic start time. Each body carries its send time."""
    outstanding: set[int] = set()
    state = {"next": 0, "confirmed": 0, "tag": 0, "start": 0.0}
    connection: pika.SelectConnection

    def send_more() -> None:
        elapsed = time.monotonic() - state["start"]
        while len(outstanding) < window and state["next"] < count and (rate == 0 or state["next"] < rate * elapsed):
            channel.basic_publish(
                "",
                queue,
                repr(time.time()).encode(),
                pika.BasicProperties(delivery_mode=2, message_id=str(state["next"])),
            )
            state["tag"] += 1
            outstanding.add(state["tag"])
            state["next"] += 1
        if state["next"] < count and (rate and state["next"] >= rate * elapsed):
            connection.ioloop.call_later(0.001, send_more)

    def on_confirm(frame: pika.frame.Method) -> None:
        tag, multiple = frame.method.delivery_tag, frame.method.multiple
        done = {t for t in outstanding if t <= tag} if multiple else {tag}
        outstanding.difference_update(done)
        state["confirmed"] += len(done)
        if state["confirmed"] >= count:
            connection.close()
        else:
            send_more()

    def on_channel(opened: pika.channel.Channel) -> None:
        nonlocal channel
        channel = opened
        channel.confirm_delivery(on_confirm)
        state["start"] = time.monotonic()
        send_more()

    channel: pika.channel.Channel
    connection = pika.SelectConnection(
        params,
        on_open_callback=lambda c: c.channel(on_open_callback=on_channel),
        on_close_callback=lambda c, reason: c.ioloop.stop(),
    )
    connection.ioloop.start()
    return state["start"]


def consume(params: pika.ConnectionParameters, queue: str, count: int, ready: threading.Event, out: dict) -> None:
    connection = pika.BlockingConnection(params)
    channel = connection.channel()
    channel.basic_qos(prefetch_count=200)
    seen: set[str] = set()
    latencies: list[float] = []
    ready.set()
    for method, properties, body in channel.consume(queue, inactivity_timeout=60):
        if method is None:
            break
        if properties.message_id not in seen:
            seen.add(properties.message_id)
            latencies.append(time.time() - float(body))
        channel.basic_ack(method.delivery_tag)
        if len(seen) >= count:
            break
    out["end"] = time.monotonic()
    out["latencies"] = latencies
    channel.cancel()
    connection.close()


def run(params: pika.ConnectionParameters, queue_type: str, count: int, rate: float, window: int) -> dict:
    queue = f"warren-bench-{queue_type}-{uuid.uuid4().hex[:6]}"
    setup = pika.BlockingConnection(params)
    setup_channel = setup.channel()
    setup_channel.queue_declare(queue, durable=True, arguments={"x-queue-type": queue_type})
    try:
        out: dict = {}
        ready = threading.Event()
        consumer = threading.Thread(target=consume, args=(params, queue, count, ready, out))
        consumer.start()
        ready.wait(30)
        start = publish(params, queue, count, rate, window)
        consumer.join(300)
        latencies = sorted(out.get("latencies", []))
        if len(latencies) < count:
            raise SystemExit(f"{queue_type}: only {len(latencies)} of {count} messages consumed")
        return {
            "throughput": count / (out["end"] - start),
            "p50_ms": 1000 * statistics.median(latencies),
            "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        }
    finally:
        setup_channel.queue_delete(queue)
        setup.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=20000, help="messages of the sustained run")
    parser.add_argument("--window", type=int, default=256, help="unconfirmed messages at most")
    parser.add_argument("--rate", type=float, default=500.0, help="messages a second of the latency run")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of the latency run")
    args = parser.parse_args()
    params = admin_parameters()
    results = {}
    for queue_type in ("classic", "quorum"):
        sustained = run(params, queue_type, args.messages, 0, args.window)
        fixed = run(params, queue_type, int(args.rate * args.seconds), args.rate, args.window)
        results[queue_type] = {
            "throughput": sustained["throughput"],
            "p50_ms": fixed["p50_ms"],
            "p99_ms": fixed["p99_ms"],
        }
        print(
            f"{queue_type:8} sustained publish-with-confirms + consume: {sustained['throughput']:8.0f} msg/s | "
            f"at {args.rate:.0f} msg/s: latency p50 {fixed['p50_ms']:6.1f} ms, p99 {fixed['p99_ms']:6.1f} ms"
        )
    classic, quorum = results["classic"], results["quorum"]
    print(
        f"quorum (3 replicas) / classic (1 node): throughput x{quorum['throughput'] / classic['throughput']:.2f}, "
        f"p50 x{quorum['p50_ms'] / classic['p50_ms']:.2f}, p99 x{quorum['p99_ms'] / classic['p99_ms']:.2f}"
    )


if __name__ == "__main__":
    main()
