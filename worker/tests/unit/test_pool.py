"""The handler pool and the lock-free hand-off of handler results back to the I/O loop."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

import pytest
from conftest import WAIT, wait_for

from warren.pool import HandlerPool


def no_wake() -> None:
    pass


def pool_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("test-pool-")]


def test_pool_runs_work_on_at_most_size_threads_and_stops() -> None:
    names: set[str] = set()
    running = peak = 0
    lock = threading.Lock()
    done = threading.Semaphore(0)

    def run(_n: int) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            names.add(threading.current_thread().name)
        time.sleep(0.002)
        with lock:
            running -= 1
        done.release()

    pool = HandlerPool(3, run, "test-pool", no_wake)
    pool.start()
    for n in range(60):
        pool.submit((n,))
    for _ in range(60):
        assert done.acquire(timeout=WAIT)
    pool.shutdown()
    assert peak <= 3 and names <= {"test-pool-0", "test-pool-1", "test-pool-2"} and len(names) > 1
    assert pool_threads() == []


def test_pool_outlives_a_failing_run_and_drops_queued_work_on_shutdown_without_wait() -> None:
    started, release = threading.Event(), threading.Event()
    ran: list[int] = []

    def run(n: int) -> None:
        if n == 0:
            raise RuntimeError("bug in run")  # logged; the thread goes on
        if n == 1:
            started.set()
            release.wait(WAIT)
        ran.append(n)

    pool = HandlerPool(1, run, "test-pool", no_wake)
    pool.start()
    for n in range(5):
        pool.submit((n,))
    assert started.wait(WAIT)  # the one thread survived n=0 and now holds n=1
    pool.shutdown(wait=False)  # 2, 3, 4 never start
    release.set()
    wait_for(lambda: pool_threads() == [])
    assert ran == [1]


def test_pool_runs_nothing_before_start_and_shuts_down_unstarted() -> None:
    ran: list[int] = []
    pool = HandlerPool(2, ran.append, "test-pool", no_wake)
    pool.submit((1,))
    assert pool_threads() == []
    pool.shutdown()  # returns: nothing to join
    assert ran == []


def test_pool_needs_a_thread() -> None:
    with pytest.raises(ValueError, match="at least one thread"):
        HandlerPool(0, print, "test-pool", no_wake)


def test_results_come_back_in_order_with_one_wake_up_per_batch() -> None:
    wakes: list[None] = []
    fourth_started, release = threading.Event(), threading.Event()

    def run(n: int) -> int:
        if n == 3:  # one thread: once this runs, the results of 0, 1 and 2 have been handed over
            fourth_started.set()
            release.wait(WAIT)
        return n * 10

    pool = HandlerPool(1, run, "test-pool", lambda: wakes.append(None))
    pool.start()
    for n in range(4):
        pool.submit((n,))
    assert fourth_started.wait(WAIT)
    assert len(wakes) == 1  # nobody took the first result yet: the others need no wake-up of their own
    assert pool.take() == [0, 10, 20] and pool.take() == []
    release.set()
    wait_for(lambda: len(wakes) == 2)  # the next result after a take wakes the loop again
    assert pool.take() == [30]
    pool.shutdown()


def test_a_result_handed_over_while_the_loop_takes_the_batch_is_never_stranded() -> None:
    """Handler threads append results without a lock; the loop lowers its wake-up flag, then takes them.

    A handler thread finishing exactly while the loop takes the batch (simulated here: the result is appended
    inside the loop's `len()` of the results) must either be in that batch or wake the loop again. With the
    flag lowered after the take instead, its result would wait, unacked, with no wake-up coming.
    """
    wakes: list[None] = []
    pool: HandlerPool

    class Results(deque[Any]):
        def __len__(self) -> int:
            n = super().__len__()
            if not wakes[1:] and 2 not in self:  # once: a handler thread finishes message 2 right now
                pool.submit((2,))
                wait_for(lambda: 2 in self)
            return n

    pool = HandlerPool(1, lambda n: n, "test-pool", lambda: wakes.append(None), results=Results())
    pool.start()
    pool.submit((1,))
    wait_for(lambda: wakes)
    taken = pool.take()  # takes message 1; message 2 arrives meanwhile
    if taken != [1, 2]:
        assert taken == [1]
        wait_for(lambda: len(wakes) == 2)  # message 2's result would wait with nothing to wake the loop
        taken += pool.take()
    pool.shutdown()
    assert taken == [1, 2]
