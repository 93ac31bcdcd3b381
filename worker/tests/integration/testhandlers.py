"""Handlers for the integration tests; they record to $WARREN_TEST_RECORD (JSON lines) for assertions."""

from __future__ import annotations

import json
import os
import threading
import time

from warren.handlers import Message

_lock = threading.Lock()


def _record(event: str, message: Message) -> None:
    line = json.dumps(
        {
            "event": event,
            "message_id": message.message_id,
            "attempt": message.attempt,
            "routing_key": message.routing_key,
            "t": time.time(),
        }
    )
    with _lock, open(os.environ["WARREN_TEST_RECORD"], "a", encoding="utf-8") as fh:
        fh.write(line + "\n")


def record(message: Message) -> None:
    """Record start, sleep body["sleep"] seconds (default 0), record end."""
    _record("start", message)
    time.sleep(float(message.body.get("sleep", 0)))
    _record("end", message)


def fail(message: Message) -> None:
    """Fail every delivery whose attempt is below body["succeed_on"] (default: never succeed)."""
    _record("start", message)
    succeed_on = message.body.get("succeed_on")
    if succeed_on is None or message.attempt < succeed_on:
        attempt = message.attempt
        # Changes to its Message must not reach the retry or the dead letter (the caller asserts).
        message.body.clear()
        message.routing_key = message.exchange = "tampered"
        message.attempt = 99
        raise RuntimeError(f"boom on attempt {attempt}")
    _record("end", message)


def slow_fail(message: Message) -> None:
    """Record start, sleep body["sleep"] seconds, then fail (every delivery)."""
    _record("start", message)
    time.sleep(float(message.body.get("sleep", 0)))
    raise RuntimeError(f"slow failure on attempt {message.attempt}")
