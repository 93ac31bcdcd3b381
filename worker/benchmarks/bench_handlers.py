"""Handlers used by throughput.py (imported by warren-worker via PYTHONPATH)."""

from __future__ import annotations

import time

from warren.handlers import Message


def noop(message: Message) -> None:
    pass


def sleep50(message: Message) -> None:
    time.sleep(0.05)  # stands in for an HTTP call or a database write
