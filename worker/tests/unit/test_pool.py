"""The handler pool and the lock-free hand-off of handler results back to the I/O loop."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import pytest
from conftest import Props

from warren.config import HandlerSpec
from warren.consumer import Delivery, Worker
from warren.handlers import Message
from warren.pool import HandlerPool

WAIT = 10.0  # seconds: generous for a loaded CI machine; every wait below ends as soon as it can


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


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

    pool = HandlerPool(3, run, "test-pool")
    pool.start()
    for n in range(60):
        pool.submit((n,))
    for _ in range(60):
        assert done.acquire(timeout=WAIT)
    pool.shutdown()
    assert peak <= 3 and names <= {"test-pool-0", "test-pool-1", "test-pool-2"} and len(names) > 1
    assert not any(t.is_alive() for t in pool._threads)


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

    pool = HandlerPool(1, run, "test-pool")
    pool.start()
    for n in range(5):
        pool.submit((n,))
    assert started.wait(WAIT)  # the one thread survived n=0 and now holds n=1
    pool.shutdown(wait=False)  # 2, 3, 4 never start
    release.set()
    pool._threads[0].join(WAIT)
    assert ran == [1]


def test_pool_runs_nothing_before_start_and_shuts_down_unstarted() -> None:
    ran: list[int] = []
    pool = HandlerPool(2, ran.append, "test-pool")
    pool.submit((1,))
    assert not any(t.is_alive() for t in pool._threads)
    pool.shutdown()  # returns: nothing to join
    assert ran == []


def test_pool_needs_a_thread() -> None:
    with pytest.raises(ValueError, match="at least one thread"):
        HandlerPool(0, print, "test-pool")


def test_a_result_handed_over_while_the_loop_takes_the_batch_is_never_stranded(worker: Worker) -> None:
    """Handler threads append results without a lock; the loop resets its wake-up flag, then takes them.

    A handler thread finishing exactly while the loop takes the batch (simulated here: the append happens
    inside the loop's `len()` of the results) must either be in that batch or wake the loop again. With the
    flag reset after the take instead, its result would wait, unacked, with no wake-up coming.
    """

    def acked() -> list[int]:
        return [tag for tag, _multiple in worker._channel.acks]

    wakes: list[object] = []
    worker.ioloop.add_callback_threadsafe = wakes.append  # type: ignore[method-assign,assignment]
    first, late = (Delivery(worker._gen, tag, "events", "order.created", Props(), b"{}") for tag in (1, 2))
    worker._unacked.update({1: first, 2: late})
    spec = HandlerSpec("order.*", "noop", lambda _message: None)
    message = Message({}, "order.created", "events", "order.events", None, 1, False)

    class Results(deque[Any]):
        def __len__(self) -> int:
            n = super().__len__()
            if not wakes[1:]:  # once: a handler thread finishes message 2 right now
                worker._run_handler(late, spec, message)
            return n

    worker._results = Results()
    worker._run_handler(first, spec, message)
    assert len(wakes) == 1
    worker._on_results()  # takes message 1; message 2 arrives meanwhile
    if 2 not in acked():
        assert len(wakes) == 2, "message 2's result is waiting and nothing will wake the loop for it"
        worker._on_results()
    assert acked() == [1, 2]
