"""warren-worker's start-up: the garbage collector's tuning."""

from __future__ import annotations

import gc

from warren.worker_cli import GC_YOUNG_THRESHOLD, tune_gc


def test_tune_gc_freezes_startup_objects_and_collects_young_ones_less_often() -> None:
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, before[1], before[2])
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
