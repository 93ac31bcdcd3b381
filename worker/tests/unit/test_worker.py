"""The worker's own state: stop requests, signals, status text (the lifecycle: integration tests)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import VALID

from warren.config import load_config
from warren.consumer import State, Worker
from warren.metrics import Metrics
from warren.notify import Notifier, status_text

LOOPBACK_NOTHING = VALID.replace('["amqp://10.0.0.1:5672", "amqp://10.0.0.2"]', '["amqp://127.0.0.1:1"]')


@pytest.fixture
def worker(write: Any, creds: dict[str, str]) -> Worker:
    return Worker(load_config(write(LOOPBACK_NOTHING), creds), Metrics("order.events"), Notifier({}))


@pytest.fixture
def own_signal_handlers() -> Iterator[None]:
    saved = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGTERM, saved[0])
    signal.signal(signal.SIGINT, saved[1])


def test_a_stop_requested_before_the_first_connection_exits_0_without_connecting(worker: Worker) -> None:
    worker.request_stop()
    assert worker.state is State.STOP_REQUESTED
    assert worker.run() == 0
    assert worker.endpoints.failures == 0 and not worker.abandoned_work


def test_sigterm_and_sigint_request_a_stop_once(
    worker: Worker, own_signal_handlers: None, caplog: pytest.LogCaptureFixture
) -> None:
    worker.install_signal_handlers()
    assert worker.state is State.RUNNING
    with caplog.at_level("INFO", "warren.worker"):
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)  # a second signal changes nothing
    assert worker.state is State.STOP_REQUESTED
    assert [r.getMessage() for r in caplog.records] == ["received SIGTERM, shutting down"]


def test_status_text_is_what_systemctl_shows() -> None:
    counts = {"processed": 5, "failed": 2, "retried": 1, "dead_lettered": 1}
    assert status_text("order.events", counts, 3) == (
        "order.events: processed=5 failed=2 retried=1 dead_lettered=1 in_flight=3"
    )
