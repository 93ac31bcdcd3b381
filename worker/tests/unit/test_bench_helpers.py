"""The throughput benchmark's own helpers: its measurements and its command-line checks."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import chart
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


def sample_run() -> chart.Run:
    return chart.Run(
        date="2026-12-02",
        commit="abc1234",
        machine="x86_64, 2 vCPUs",
        rounds=[[20_000.0, 3_000.0, 16_000.0], [10_000.0, 2_000.0, 12_000.0], [30_000.0, 4_000.0, 15_000.0]],
        result={
            "noop_vs_tight": 0.8,
            "noop_vs_tutorial": 6.0,
            "io_msgs_per_s": 250.0,
            "publish_msgs_per_s": 12_000.0,
        },
    )


def test_chart_takes_each_consumers_median_over_the_rounds() -> None:
    assert chart.median_rates(sample_run()) == {
        "tight pika consumer": 20_000.0,
        "tutorial worker": 3_000.0,
        "warren-worker": 15_000.0,
    }


def test_chart_draws_every_figure_as_a_share_of_its_goal() -> None:
    assert chart.goal_shares(sample_run()) == [
        ("no-op vs. tight consumer", pytest.approx(1.0)),
        ("no-op vs. tutorial worker", pytest.approx(1.2)),
        ("50 ms handler, msg/s", pytest.approx(0.5)),
        ("publisher, msg/s", pytest.approx(1.2)),
    ]


def test_chart_reads_back_the_figures_it_saved(tmp_path: Path) -> None:
    saved = tmp_path / "run.json"
    saved.write_text(json.dumps(sample_run()))
    assert chart.load(saved) == sample_run()
