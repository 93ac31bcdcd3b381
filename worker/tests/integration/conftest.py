"""Integration fixtures: a RabbitMQ on 127.0.0.1:5672, one throwaway vhost per test, the Warren topology.

Only loopback traffic. Every wait is bounded (see `wait_for`).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pika
import pytest

HERE = Path(__file__).resolve().parent
WORKER_DIR = HERE.parents[1]
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
PORT = 5672

# name -> (exchange, type, binding key); exchange "" = default exchange (no binding)
WORK_QUEUES = {
    "order.events": ("events", "topic", "order.*"),
    "jobs": ("", "direct", "jobs"),
    "whatsapp.notifications": ("notifications", "direct", "whatsapp"),
    "test.work": ("test", "topic", "test.#"),
}


def _listening() -> bool:
    try:
        with socket.create_connection((HOST, PORT), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session", autouse=True)
def broker() -> None:
    if not _listening():
        subprocess.run([str(WORKER_DIR / "scripts" / "ensure-test-broker.sh")], check=True, timeout=600)
    assert _listening(), "RabbitMQ is not listening on 127.0.0.1:5672"


def rabbitmqctl(*args: str) -> str:
    proc = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"rabbitmqctl {' '.join(args)}: {proc.stderr.strip()}"
    return proc.stdout


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@dataclass
class Broker:
    vhost: str
    tmp: Path
    record_file: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def params(self, user: str = "guest", password: str = "guest") -> pika.ConnectionParameters:
        return pika.ConnectionParameters(
            HOST, PORT, self.vhost, pika.PlainCredentials(user, password), connection_attempts=1
        )

    def channel(self) -> Any:
        conn = pika.BlockingConnection(self.params())
        ch = conn.channel()
        return ch

    def depth(self, queue: str) -> int:
        """Ready messages (unacked ones are not counted; they return to ready when a consumer dies)."""
        conn = pika.BlockingConnection(self.params())
        try:
            return int(conn.channel().queue_declare(queue, passive=True).method.message_count)
        finally:
            conn.close()

    def get_all(self, queue: str, limit: int = 1000) -> list[tuple[Any, bytes]]:
        """Drain up to `limit` messages from a queue: [(properties, body)]."""
        conn = pika.BlockingConnection(self.params())
        out = []
        try:
            ch = conn.channel()
            for _ in range(limit):
                method, props, body = ch.basic_get(queue, auto_ack=True)
                if method is None:
                    break
                out.append((props, body))
        finally:
            conn.close()
        return out

    def publish_raw(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        message_id: str | None = None,
        content_type: str | None = None,
        content_encoding: str | None = None,
    ) -> str:
        mid = message_id or str(uuid.uuid4())
        conn = pika.BlockingConnection(self.params())
        try:
            ch = conn.channel()
            ch.confirm_delivery()
            ch.basic_publish(
                exchange,
                routing_key,
                body,
                pika.BasicProperties(
                    delivery_mode=2,
                    message_id=mid,
                    content_type=content_type,
                    content_encoding=content_encoding,
                ),
                mandatory=True,
            )
        finally:
            conn.close()
        return mid

    def write_config(self, queue: str, handlers: dict[str, str], **sections: dict[str, Any]) -> Path:
        password = self.tmp / "password"
        password.write_text("guest\n")
        data: dict[str, dict[str, Any]] = {
            "broker": {
                "endpoints": [f"amqp://{HOST}:{PORT}"],
                "vhost": self.vhost,
                "username": "guest",
                "password_file": str(password),
                "heartbeat": 10,
            },
            "consumer": {"queue": queue, "prefetch": 10, "concurrency": 4, "drain_timeout": 10},
            "handlers": handlers,
            "retry": {"max_attempts": 3, "initial_delay": 0.2, "multiplier": 2.0, "max_delay": 1.0},
            # DEBUG: the tests follow each message by its outcome line, which is DEBUG for an acked one.
            "logging": {"format": "plain", "level": "DEBUG"},
        }
        for name, values in sections.items():
            data.setdefault(name, {}).update(values)
        path = self.tmp / f"{queue}-{uuid.uuid4().hex[:6]}.toml"
        path.write_text(_toml(data))
        return path

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {
            **os.environ,
            "PYTHONPATH": str(HERE),
            "WARREN_TEST_RECORD": str(self.record_file),
            "PYTHONUNBUFFERED": "1",
            **(extra or {}),
        }
        if "NOTIFY_SOCKET" not in (extra or {}):
            env.pop("NOTIFY_SOCKET", None)  # never talk to a real systemd from tests
        return env

    def run(self, tool: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run warren-worker / warren-publish to completion (bounded)."""
        return subprocess.run(
            [str(BIN / tool), *args], input=stdin, capture_output=True, text=True, timeout=60, env=self.env()
        )

    def start_worker(
        self, config: Path, env: dict[str, str] | None = None, args: Sequence[str] = ()
    ) -> tuple[subprocess.Popen[bytes], Path]:
        log = config.with_suffix(".log")
        with open(log, "wb") as fh:
            proc = subprocess.Popen(
                [str(BIN / "warren-worker"), "--config", str(config), *args],
                stdout=fh,
                stderr=subprocess.STDOUT,
                env=self.env(env),
            )
        self.procs.append(proc)
        wait_for(
            lambda: "consuming " in log.read_text() or proc.poll() is not None,
            30,
            "worker to start consuming",
        )
        assert proc.poll() is None, f"worker exited early ({proc.returncode}):\n{log.read_text()}"
        return proc, log

    def records(self) -> list[dict[str, Any]]:
        if not self.record_file.exists():
            return []
        return [json.loads(line) for line in self.record_file.read_text().splitlines() if line]


def _toml(data: dict[str, dict[str, Any]]) -> str:
    lines = []
    for section, values in data.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            lines.append(f"{json.dumps(key)} = {json.dumps(value)}")
        lines.append("")
    return "\n".join(lines)


def declare_topology(ch: Any) -> None:
    """The reference topology of docs/design.md, plus a `test` topic exchange and queue."""
    ch.exchange_declare("warren.retry", "direct", durable=True)
    ch.exchange_declare("warren.dlx", "direct", durable=True)
    for queue, (exchange, kind, key) in WORK_QUEUES.items():
        if exchange:
            ch.exchange_declare(exchange, kind, durable=True)
        ch.queue_declare(
            queue,
            durable=True,
            arguments={"x-dead-letter-exchange": "warren.dlx", "x-dead-letter-routing-key": queue},
        )
        if exchange:
            ch.queue_bind(queue, exchange, routing_key=key)
        ch.queue_declare(
            f"{queue}.retry",
            durable=True,
            arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": queue},
        )
        ch.queue_bind(f"{queue}.retry", "warren.retry", routing_key=queue)
        ch.queue_declare(f"{queue}.dlq", durable=True)
        ch.queue_bind(f"{queue}.dlq", "warren.dlx", routing_key=queue)


@pytest.fixture
def mq(tmp_path: Path) -> Iterator[Broker]:
    vhost = f"warren-test-{uuid.uuid4().hex[:10]}"
    b = Broker(vhost, tmp_path, tmp_path / "records.jsonl")
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        conn = pika.BlockingConnection(b.params())
        declare_topology(conn.channel())
        conn.close()
        yield b
    finally:
        for proc in b.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        rabbitmqctl("delete_vhost", vhost)
