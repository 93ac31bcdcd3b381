from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pika
import pytest

import warren.logs
from warren.config import WorkerConfig, load_config
from warren.dispatcher import Dispatcher
from warren.metrics import Metrics
from warren.outcomes import OutcomeLog
from warren.session import Session

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
    """What a Session asks of a pika channel, recorded."""

    is_open = True

    def __init__(self) -> None:
        self.acks: list[tuple[int, bool]] = []
        self.nacks: list[tuple[int, bool]] = []
        self.published: list[tuple[str, str, bytes, Any]] = []

    def basic_ack(self, tag: int, multiple: bool = False) -> None:
        self.acks.append((tag, multiple))

    def basic_nack(self, tag: int, requeue: bool = True) -> None:
        self.nacks.append((tag, requeue))

    def basic_publish(self, exchange: str, routing_key: str, body: bytes, props: Any, **_: Any) -> None:
        self.published.append((exchange, routing_key, body, props))


class Props:
    headers = None
    message_id = None


def deliver(tag: int, routing_key: str = "order.created", exchange: str = "events") -> Any:
    return pika.spec.Basic.Deliver(delivery_tag=tag, exchange=exchange, routing_key=routing_key)


def confirm(tag: int, *, multiple: bool = False, ack: bool = True) -> Any:
    """A confirm frame as pika hands it to the confirm callback."""
    method = pika.spec.Basic.Ack if ack else pika.spec.Basic.Nack
    return pika.frame.Method(1, method(delivery_tag=tag, multiple=multiple))


@pytest.fixture
def profile(write: Any, creds: dict[str, str]) -> WorkerConfig:
    return load_config(write(VALID), creds)


WAIT = 10.0  # seconds: generous for a loaded CI machine; every wait ends as soon as it can


def wait_for(condition: Callable[[], object]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


@pytest.fixture
def wakes() -> list[Callable[[], None]]:
    """The callbacks the dispatcher fixture asked to run on the I/O loop, in order."""
    return []


@pytest.fixture
def dispatcher(profile: WorkerConfig, wakes: list[Callable[[], None]]) -> Iterator[Dispatcher]:
    """A Dispatcher on the VALID profile with a session on a FakeChannel, its handler threads running.

    Its wake-ups go to `wakes` instead of an I/O loop: results wait for the test's own `on_results()`.
    """
    d = Dispatcher(profile, OutcomeLog("order.events", Metrics("order.events")), wakes.append, lambda: None)
    d.session = Session(FakeChannel(), "order.events")
    d.pool.start()
    yield d
    d.pool.shutdown()


@pytest.fixture
def own_logging() -> Iterator[None]:
    """Restore the root logger and Warren's handler after a test that calls setup_logging."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level, warren.logs._handler
    yield
    root.handlers[:], _, warren.logs._handler = saved
    root.setLevel(saved[1])
    warren.logs.quiet_pika(saved[1])


class Clock:
    """A clock the test sets: `now` seconds."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
