"""A bounded pool of handler threads fed by one queue, and the hand-off of their results to the I/O loop.

A fixed set of `size` threads takes work from one `queue.SimpleQueue`, in the order it was submitted. Handing
a message over is a `put` and a `get`, both C calls with no Python-level lock: `ThreadPoolExecutor.submit`
builds a `Future` and a work item and takes a lock and a semaphore for every call, which at thousands of
messages a second is a measurable part of the worker's per-message cost. Results come back the same way:
appended to a deque, with one wake-up of the loop per batch rather than one per result.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from queue import Empty, SimpleQueue
from typing import Any

log = logging.getLogger("warren.worker")

_STOP: Any = object()  # one per thread ends it


class HandlerPool:
    """`size` daemon threads that each call `run(*args)` for every `args` tuple given to `submit`, from
    `start()` on, and hand what it returns to `take`.

    `wake()` is called from a pool thread when a result arrives and none is waiting to be taken; it must
    make the loop call `take` (pika's `add_callback_threadsafe`). `results` is where results wait: a deque
    unless given.
    """

    def __init__(
        self,
        size: int,
        run: Callable[..., object],
        name: str,
        wake: Callable[[], object],
        results: deque[Any] | None = None,
    ) -> None:
        if size < 1:
            raise ValueError(f"a pool needs at least one thread, not {size}")
        # No lock: deque appends and pops are atomic, and `take` lowers the wake-up flag before it takes.
        self._results: deque[Any] = deque() if results is None else results
        self._wake = wake
        self._wake_pending = False
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
        get, results = self._queue.get, self._results
        while (args := get()) is not _STOP:
            try:
                result = run(*args)
            except Exception:  # `run` handles handler failures; this is a bug in it, not a reason to shrink
                log.exception("unexpected error in a handler thread; its message stays unacknowledged")
                continue
            results.append(result)
            if not self._wake_pending:  # one wake-up per batch of results, not one per result
                self._wake_pending = True
                self._wake()

    def take(self) -> list[Any]:
        """On the loop thread, after a wake-up: every result handed over since the last `take`, in order."""
        # Lower the flag first, then take: a result appended after this is either taken below or, seeing
        # the flag down, wakes the loop again. A result whose thread saw the flag still up came before it.
        self._wake_pending = False
        results = self._results
        return [results.popleft() for _ in range(len(results))]

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
