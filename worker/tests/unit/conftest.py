from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from warren.config import load_config
from warren.consumer import Worker
from warren.metrics import Metrics
from warren.notify import Notifier

VALID = """
[broker]
endpoints = ["amqp://10.0.0.1:5672", "amqp://10.0.0.2"]
vhost = "/"
username = "warren"
password_file = "amqp-password"

[consumer]
queue = "order.events"
prefetch = 32
concurrency = 8

[handlers]
"order.*" = "warren.handlers:order_event"
"#" = "warren.handlers:job"
"""


@pytest.fixture
def creds(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "amqp-password").write_text("s3cret\n")
    return {"CREDENTIALS_DIRECTORY": str(tmp_path)}


@pytest.fixture
def write(tmp_path: Path) -> Any:
    def _write(text: str) -> Path:
        path = tmp_path / "profile.toml"
        path.write_text(text)
        return path

    return _write


class FakeChannel:
    def __init__(self) -> None:
        self.acks: list[tuple[int, bool]] = []
        self.published: list[tuple[str, str, bytes, Any]] = []

    def basic_ack(self, tag: int, multiple: bool = False) -> None:
        self.acks.append((tag, multiple))

    def basic_publish(self, exchange: str, routing_key: str, body: bytes, props: Any, **_: Any) -> None:
        self.published.append((exchange, routing_key, body, props))


class Props:
    headers = None
    message_id = None


@pytest.fixture
def worker(write: Any, creds: dict[str, str]) -> Iterator[Worker]:
    """A Worker on the VALID profile with a FakeChannel; results wait for the test's own _on_results()."""
    w = Worker(load_config(write(VALID), creds), Metrics("order.events"), Notifier({}))
    w._channel = FakeChannel()
    w.ioloop.add_callback_threadsafe = lambda _callback: None  # type: ignore[method-assign]
    w.pool.start()
    yield w
    w.pool.shutdown()
