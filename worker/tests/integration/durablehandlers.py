"""A handler whose record survives the worker process: the fault tests count what handlers did by it.

Each record is one `write(2)` on an O_APPEND descriptor followed by `fsync`, so a SIGKILL (or a broker restart
with the worker's log still in its buffer) can neither lose a finished record nor leave half a line.
"""

from __future__ import annotations

import json
import os
import threading
import time

from warren.handlers import Message

_lock = threading.Lock()
_running = 0  # handlers inside `record` right now, in this process


def _append(event: str, message: Message, running: int) -> None:
    line = json.dumps(
        {
            "event": event,
            "message_id": message.message_id,
            "attempt": message.attempt,
            "running": running,
            "pid": os.getpid(),
            "t": time.time(),
        }
    )
    fd = os.open(os.environ["WARREN_TEST_RECORD"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def record(message: Message) -> None:
    """Record "start" (with how many handlers run at once), sleep body["sleep"] seconds, record "end"."""
    global _running
    with _lock:
        _running += 1
        running = _running
    try:
        _append("start", message, running)
        time.sleep(float(message.body.get("sleep", 0)))
        _append("end", message, running)
    finally:
        with _lock:
            _running -= 1


def fail(message: Message) -> None:
    """Record "start" and raise: every delivery fails (a transient error, so it is retried)."""
    _append("start", message, 0)
    raise RuntimeError(f"fails on attempt {message.attempt}")
