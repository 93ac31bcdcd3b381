"""The throughput benchmark's own helpers: its measurements and its command-line checks."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import throughput

REPO = Path(__file__).resolve().parents[3]


def test_cpu_seconds_reads_this_process_user_and_system_time() -> None:
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:  # burn 0.2 s of CPU, so a wrong /proc field shows
        pass
    tick = 1 / os.sysconf("SC_CLK_TCK")
    assert abs(throughput.cpu_seconds(os.getpid()) - time.process_time()) <= 2 * tick + 0.02


def test_queue_arguments_takes_a_json_object_and_says_why_not() -> None:
    assert throughput.queue_arguments('{"x-queue-type": "quorum"}') == {"x-queue-type": "quorum"}
    with pytest.raises(argparse.ArgumentTypeError, match=r"^not JSON: "):
        throughput.queue_arguments("{bad")
    with pytest.raises(argparse.ArgumentTypeError, match="must be a JSON object"):
        throughput.queue_arguments("[1]")


def test_bench_queues_use_the_storage_version_the_broker_role_configures() -> None:
    defaults = yaml.safe_load((REPO / "roles" / "rabbitmq" / "defaults" / "main.yml").read_text())
    version = defaults["rabbitmq_classic_queue_version"]
    assert {"x-queue-version": version} == throughput.APPLIANCE_QUEUE_ARGUMENTS


def test_with_broker_cost_divides_the_brokers_cpu_meanwhile_by_the_messages() -> None:
    def consume() -> float:  # this process stands in for the broker: 0.2 s of CPU for 1,000 messages
        deadline = time.process_time() + 0.2
        while time.process_time() < deadline:
            pass
        return 5_000.0

    rate, us = throughput.with_broker_cost(os.getpid(), 1_000, consume)
    tick = 1 / os.sysconf("SC_CLK_TCK")
    assert rate == 5_000.0 and us is not None
    assert abs(us - 200.0) <= (2 * tick + 0.02) / 1_000 * 1e6  # 200 us a message, within /proc's ticks
    assert throughput.with_broker_cost(None, 1_000, lambda: 1.0) == (1.0, None)
    assert throughput.broker_note(52.4) == " (broker 52 us/msg)" and throughput.broker_note(None) == ""
