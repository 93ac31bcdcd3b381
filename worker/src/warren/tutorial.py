"""The built-in handlers' tutorial lines, at most `rate` messages' worth a second per worker process.

The tutorials' workers print what they receive ("Received event {...}", "Processing event type ...");
the built-in handlers reproduce those lines so that the learning path's commands show the same output.
Two lines a message would triple what reaches the journal under load, so a handler asks `wanted()` once
per message: yes for the first `rate` messages of each second, no (and counted, for the summary line)
for the rest. Messages published by hand all get their lines; a flood gets a sample of them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("warren.handlers")

DEFAULT_RATE = 10


class LineBudget:
    """Yes for up to `rate` requests in each second (fixed one-second windows), counting the refusals.

    Thread-safe: the handlers that ask run on the worker's pool threads.
    """

    def __init__(self, rate: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.skipped = 0
        self._clock = clock
        self._lock = threading.Lock()
        self._window_end = 0.0
        self._used = 0

    def take(self) -> bool:
        with self._lock:
            now = self._clock()
            if now >= self._window_end:
                self._window_end = now + 1.0
                self._used = 0
            if self._used < self.rate:
                self._used += 1
                return True
            self.skipped += 1
            return False


budget = LineBudget(DEFAULT_RATE)


def configure(rate: int) -> None:
    """Set the process's budget (the worker profile's `logging.tutorial_rate`) and reset its count."""
    global budget
    budget = LineBudget(rate)


def wanted() -> bool:
    """Whether the current message's tutorial lines are logged: INFO is enabled and the budget allows."""
    return log.isEnabledFor(logging.INFO) and budget.take()


def skipped() -> int:
    """Messages whose tutorial lines were left out since the budget was configured."""
    return budget.skipped
