"""Metrics ports: each profile's block of ten, and what does not fit in it."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "filter_plugins"))
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "molecule" / "resources"))
from role_validation import failure_lines, run_role_validation
from warren_worker import metrics_port_errors, worker_instances


def profile(name, instances):
    return {"name": name, "queue": name, "instances": instances, "prefetch": 1, "concurrency": 1,
            "handlers": {"#": "warren.handlers:job"}}  # fmt: skip


def test_ten_instances_fit_in_a_profiles_block_of_ports():
    profiles = [profile("orders", 10), profile("jobs", 10)]
    assert metrics_port_errors(profiles, 9420) == []
    ports = [i["metrics_port"] for i in worker_instances(profiles, 9420)]
    assert ports == [*range(9421, 9431), *range(9431, 9441)] and len(set(ports)) == 20


def test_an_eleventh_instance_would_take_the_next_profiles_port():
    profiles = [profile("orders", 11), profile("jobs", 1)]
    ports = [i["metrics_port"] for i in worker_instances(profiles, 9420)]
    assert ports.count(9431) == 2  # what the check prevents: orders-11 and jobs-1 on one port
    assert metrics_port_errors(profiles, 9420) == [
        "warren_worker_profiles[0] (orders): at most 10 instances while metrics are on, got 11: instance n of "
        "profile p listens on warren_worker_metrics_base_port + 10*p + n, so instance 11 would take the next "
        "profile's port"
    ]


def test_without_metrics_any_number_of_instances_is_fine():
    assert metrics_port_errors([profile("orders", 50)], 0) == []
    assert metrics_port_errors([profile("orders", 50)], "0") == []


def test_ports_stay_below_65536_and_the_base_is_a_port():
    assert metrics_port_errors([profile("orders", 2), profile("jobs", 6)], 65520) == [
        "warren_worker_profiles[1] (jobs): instance 6 would listen on port 65536, beyond 65535"
    ]
    assert metrics_port_errors([profile("orders", 1)], "9420") == []  # extra vars arrive as text
    assert metrics_port_errors([profile("orders", 1)], 70000) == [
        "warren_worker_metrics_base_port must be a port number (0 disables metrics), got 70000"
    ]
    assert metrics_port_errors([profile("orders", 1)], "nine") == [
        "warren_worker_metrics_base_port must be a port number (0 disables metrics), got 'nine'"
    ]


def test_the_role_refuses_to_deploy_colliding_ports(tmp_path):
    extra_vars = {
        "warren_amqp_password": "test-only",
        "warren_worker_amqp_endpoints": ["amqp://127.0.0.1:5672"],
        "warren_worker_profiles": [profile("orders", 11), profile("jobs", 1)],
        "warren_worker_metrics_base_port": 9420,
    }
    assert failure_lines(run_role_validation("warren_worker", tmp_path, extra_vars)) == [
        "Invalid warren_worker settings: 1 error(s)",
        "- " + metrics_port_errors(extra_vars["warren_worker_profiles"], 9420)[0],
    ]
