"""A bounded pool of handler threads fed by one queue.

A fixed set of `size` threads takes work from one `queue.SimpleQueue`, in the order it was submitted. Handing
a message over is a `put` and a `get`, both C calls with no Python-level lock: `ThreadPoolExecutor.submit`
builds a `Future` and a work item and takes a lock and a semaphore for every call, which at thousands of
messages a second is a measurable part of the worker's per-message cost.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from queue import Empty, SimpleQueue
from typing import Any

log = logging.getLogger("warren.worker")

_STOP: Any = object()  # one per thread ends it


class HandlerPool:
    """`size` daemon threads that each call `run(*args)` for every `args` tuple given to `submit`, from
    `start()` on."""

    def __init__(self, size: int, run: Callable[..., object], name: str) -> None:
        if size < 1:
            raise ValueError(f"a pool needs at least one thread, not {size}")
        self._queue: SimpleQueue[tuple[Any, ...]] = SimpleQueue()
        # The queue's own put: submitting adds no Python call of its own. Never blocks (unbounded queue;
        # the consumer's prefetch bounds how much work can be waiting).
        self.submit: Callable[[tuple[Any, ...]], None] = self._queue.put
        # Daemon threads: a handler that never returns must not keep the process alive after a drain
        # timeout (the worker exits and the broker redelivers what was in flight).
        self._threads = [
            threading.Thread(target=self._serve, args=(run,), name=f"{name}-{i}", daemon=True)
            for i in range(size)
        ]

    def start(self) -> None:
        """Start the threads; work submitted before waits for them."""
        for thread in self._threads:
            thread.start()

    def _serve(self, run: Callable[..., object]) -> None:
        get = self._queue.get
        while (args := get()) is not _STOP:
            try:
                run(*args)
            except Exception:  # `run` handles handler failures; this is a bug in it, not a reason to shrink
                log.exception("unexpected error in a handler thread; its message stays unacknowledged")

    def shutdown(self, wait: bool = True) -> None:
        """Stop every thread once it is idle; without `wait`, drop work not started and return at once."""
        if not wait:
            try:
                while True:
                    self._queue.get_nowait()
            except Empty:
                pass
        for _ in self._threads:
            self._queue.put(_STOP)
        if wait:
            for thread in self._threads:
                if thread.ident is not None:  # started
                    thread.join()
