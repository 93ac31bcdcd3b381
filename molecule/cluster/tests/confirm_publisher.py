"""Fault-test publisher, run on a node of the cluster scenario with the workers' venv Python (pika):
publishes --count persistent order events at --rate per second with publisher confirms, rotating through the
brokers and sending a message again when its connection was lost before the confirm (at least once). Every
confirmed message_id goes to --out, one a line; the last line of stdout is the JSON summary. Bounded by --deadline.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import pika
import pika.exceptions


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoints", nargs="+", required=True)
    parser.add_argument("--password-file", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--deadline", type=float, default=240.0)
    args = parser.parse_args()
    with open(args.password_file, encoding="utf-8") as handle:
        credentials = pika.PlainCredentials("warren", handle.read().strip())
    stop_at = time.monotonic() + args.deadline
    sent = confirmed = reconnects = 0
    channel = None
    endpoint = 0
    with open(args.out, "w", encoding="utf-8") as out:
        index = 0
        while index < args.count and time.monotonic() < stop_at:
            if channel is None:
                host = args.endpoints[endpoint % len(args.endpoints)]
                endpoint += 1
                try:
                    connection = pika.BlockingConnection(
                        pika.ConnectionParameters(
                            host,
                            credentials=credentials,
                            heartbeat=5,
                            socket_timeout=5,
                            blocked_connection_timeout=10,
                            connection_attempts=1,
                        )
                    )
                    channel = connection.channel()
                    channel.confirm_delivery()
                except pika.exceptions.AMQPError:
                    reconnects += 1
                    time.sleep(0.5)
                    continue
            message_id = f"{args.prefix}-{index}"
            body = json.dumps({"order_id": index, "event": "order.updated"})
            try:
                sent += 1
                channel.basic_publish(
                    "events",
                    "order.updated",
                    body,
                    pika.BasicProperties(delivery_mode=2, message_id=message_id, content_type="application/json"),
                    mandatory=True,
                )
            except (pika.exceptions.AMQPError, OSError):
                # Unknown whether the broker has it: send it again on the next connection.
                channel = None
                reconnects += 1
                continue
            confirmed += 1
            out.write(message_id + "\n")
            out.flush()
            index += 1
            time.sleep(1 / args.rate)
    print(json.dumps({"sent": sent, "confirmed": confirmed, "reconnects": reconnects, "wanted": args.count}))
    return 0 if confirmed == args.count else 1


if __name__ == "__main__":
    sys.exit(main())
