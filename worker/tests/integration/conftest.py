"""Integration fixtures: a RabbitMQ on 127.0.0.1:5672, one throwaway vhost per test, the Warren topology as
the rabbitmq_topology role renders it (its defaults plus a `test` exchange and work queue).

Only loopback traffic. Every wait is bounded (see `wait_for`).
"""

from __future__ import annotations

import copy
import importlib.util
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
import yaml

HERE = Path(__file__).resolve().parent
WORKER_DIR = HERE.parents[1]
TOPOLOGY_ROLE = WORKER_DIR.parent / "roles" / "rabbitmq_topology"
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
PORT = 5672


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


def rabbitmqctl(*args: str, stdin: str | None = None) -> str:
    proc = subprocess.run(
        ["rabbitmqctl", "-q", *args], input=stdin, capture_output=True, text=True, timeout=60
    )
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


def _role_filters() -> Any:
    spec = importlib.util.spec_from_file_location(
        "topology_filters", TOPOLOGY_ROLE / "filter_plugins" / "topology.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def topology_definitions(vhost: str) -> dict[str, Any]:
    """The role's rendered definitions of its default topology (docs/design.md) plus a `test` topic exchange
    and work queue wired the same way, all moved into `vhost`, with guest's permissions there."""
    filters = _role_filters()
    defaults = yaml.safe_load((TOPOLOGY_ROLE / "defaults" / "main.yml").read_text(encoding="utf-8"))
    topology = copy.deepcopy(defaults["rabbitmq_topology_definitions"])
    topology["exchanges"].append({"name": "test", "type": "topic"})
    topology["queues"] += [
        {"name": "test.work", "dead_letter_exchange": "warren.dlx"},
        {"name": "test.work.retry", "dead_letter_exchange": "", "dead_letter_routing_key": "test.work"},
        {"name": "test.work.dlq"},
    ]
    topology["bindings"] += [
        {"source": "test", "destination": "test.work", "routing_key": "test.#"},
        {"source": "warren.retry", "destination": "test.work.retry", "routing_key": "test.work"},
        {"source": "warren.dlx", "destination": "test.work.dlq", "routing_key": "test.work"},
    ]
    assert filters.topology_errors(topology) == []
    definitions: dict[str, Any] = filters.rendered(topology)
    definitions["vhosts"] = [{"name": vhost}]
    for section in ("exchanges", "queues", "bindings", "policies"):
        for entry in definitions[section]:
            entry["vhost"] = vhost
    definitions["permissions"] = [
        {"user": "guest", "vhost": vhost, "configure": ".*", "write": ".*", "read": ".*"}
    ]
    return definitions


@pytest.fixture
def mq(tmp_path: Path) -> Iterator[Broker]:
    vhost = f"warren-test-{uuid.uuid4().hex[:10]}"
    b = Broker(vhost, tmp_path, tmp_path / "records.jsonl")
    # One CLI call creates the vhost, guest's permissions and the whole topology.
    rabbitmqctl("import_definitions", stdin=json.dumps(topology_definitions(vhost)))
    try:
        yield b
    finally:
        for proc in b.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        rabbitmqctl("delete_vhost", vhost)
