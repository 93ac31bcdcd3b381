"""Real ansible-playbook runs of the role's validation on localhost (no host, no broker): bad variables fail the
play before anything is installed, with every problem listed, and the defaults pass."""

import sys
from pathlib import Path

# The run and the reading of its failure are shared by the role tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "molecule" / "resources"))
from role_validation import failure_lines, run_role_validation

ENDPOINTS = ["amqp://127.0.0.1:5672"]
WORKER_SOURCE_DIR = Path(__file__).resolve().parents[3] / "worker"


def run_validation(tmp_path, extra_vars):
    # The default source directory is found from the playbook's; the validation playbook is not the project's.
    return run_role_validation(
        "warren_worker", tmp_path, {"warren_worker_source_dir": str(WORKER_SOURCE_DIR), **extra_vars}
    )


def test_defaults_pass_with_a_password_and_a_broker(tmp_path):
    result = run_validation(tmp_path, {"warren_amqp_password": "test-only", "warren_worker_amqp_endpoints": ENDPOINTS})
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_broker_and_no_password_are_both_named(tmp_path):
    # localhost, is in no rabbitmq group, so the default endpoints are empty.
    assert failure_lines(run_validation(tmp_path, {})) == [
        "Invalid warren_worker settings: 2 error(s)",
        "- warren_worker_amqp_endpoints is empty: add broker hosts to the rabbitmq group or list amqp:// URLs",
        "- warren_worker_amqp_password is empty: set warren_amqp_password from Ansible Vault "
        "(the local inventory generates one at deploy time)",
    ]


def test_bad_profiles_are_listed_by_name(tmp_path):
    profiles = [
        {"name": "orders", "queue": "order.events", "instances": 2, "prefetch": 4, "concurrency": 8,
         "handlers": {"order.*": "warren.handlers:order_event"}},
        {"name": "jobs", "queue": "jobs", "instances": 1, "prefetch": 1, "concurrency": 1,
         "handlers": {"jobs": "not a handler"}},
    ]  # fmt: skip
    result = run_validation(
        tmp_path,
        {
            "warren_amqp_password": "test-only",
            "warren_worker_amqp_endpoints": ENDPOINTS,
            "warren_worker_profiles": profiles,
            "warren_worker_drain_timeout": -1,
        },
    )
    assert failure_lines(result) == [
        "Invalid warren_worker settings: 3 error(s)",
        "- warren_worker_profiles[0] (orders): consumer.concurrency (8) must not exceed consumer.prefetch (4)",
        "- warren_worker_profiles[1] (jobs): handler for 'jobs' must look like 'package.module:function'",
        "- warren_worker_drain_timeout must be a positive number of seconds, got -1",
    ]


def test_bad_log_settings_fail_before_anything_is_installed(tmp_path):
    result = run_validation(
        tmp_path,
        {
            "warren_amqp_password": "test-only",
            "warren_worker_amqp_endpoints": ENDPOINTS,
            "warren_worker_log_rate_limit_interval": "soon",
            "warren_worker_log_rate_limit_burst": -5,
        },
    )
    assert failure_lines(result) == [
        "Invalid warren_worker settings: 2 error(s)",
        "- warren_worker_log_rate_limit_interval must be a systemd time span such as 10s or 1min, got 'soon'",
        "- warren_worker_log_rate_limit_burst must be an integer >= 0, got -5",
    ]


def test_a_heartbeat_the_worker_would_refuse_fails_before_anything_is_installed(tmp_path):
    result = run_validation(
        tmp_path,
        {
            "warren_amqp_password": "test-only",
            "warren_worker_amqp_endpoints": ENDPOINTS,
            "warren_worker_amqp_heartbeat": 2,
        },
    )
    assert failure_lines(result) == [
        "Invalid warren_worker settings: 1 error(s)",
        "- warren_worker_amqp_heartbeat must be 0 (off) or between 5 and 3600 seconds "
        "(shorter ones drop healthy connections on a busy host), got 2",
    ]


def test_mutual_tls_without_a_way_to_sign_or_amqps_is_refused(tmp_path):
    # The shared switch, as an inventory sets it; the default endpoints are plain amqp:// here.
    result = run_validation(
        tmp_path,
        {"warren_amqp_password": "test-only", "warren_worker_amqp_endpoints": ENDPOINTS, "warren_tls_verify_peer": True,
         "warren_worker_amqp_tls": False, "warren_tls_ca_file": "/pki/ca.crt", "warren_tls_pki_dir": str(tmp_path)},
    )  # fmt: skip
    assert failure_lines(result) == [
        "Invalid warren_worker settings: 2 error(s)",
        "- warren_worker_tls_client_cert needs warren_worker_amqp_tls: a client certificate is for amqps://",
        "- warren_worker_tls_client_cert: nothing to sign a client certificate with: no CA key in "
        "warren_worker_tls_pki_dir (ca.key) and no warren_worker_tls_ca_key; bring the CA's key, or each worker "
        "host's certificate (warren_worker_tls_cert_file) and key (warren_worker_tls_key)",
    ]
    # With the CA's key where the rabbitmq role generates it, only the plain endpoints remain wrong.
    (tmp_path / "ca.key").write_text("a CA key\n")
    result = run_validation(
        tmp_path,
        {"warren_amqp_password": "test-only", "warren_worker_amqp_endpoints": ENDPOINTS, "warren_tls_verify_peer": True,
         "warren_worker_amqp_tls": False, "warren_tls_ca_file": "/pki/ca.crt", "warren_tls_pki_dir": str(tmp_path)},
    )  # fmt: skip
    assert len(failure_lines(result)) == 2


def test_wrong_types_and_unknown_keys_are_refused_by_the_argument_spec(tmp_path):
    profiles = [{"name": "orders", "queue": "order.events", "instances": "two", "prefetch": 4, "concurrency": 1,
                 "handlers": {"order.*": "warren.handlers:order_event"}, "replicas": 2}]  # fmt: skip
    result = run_validation(
        tmp_path,
        {"warren_amqp_password": "test-only", "warren_worker_amqp_endpoints": ENDPOINTS,
         "warren_worker_profiles": profiles},
    )  # fmt: skip
    message = "\n".join(failure_lines(result))
    assert "warren_worker_profiles" in message
    assert "replicas" in message
    assert "instances" in message
