"""The role's pure helpers: unit instances and ports, broker endpoint order, profile validation, client
certificates."""

import copy
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "filter_plugins"))
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "molecule" / "resources"))
from certificates import cert_pem, issue
from warren_worker import (
    amqp_endpoints,
    heartbeat_errors,
    issued_by,
    log_settings_errors,
    settings_errors,
    tls_client_errors,
    worker_instances,
)
from warren_worker import profile_errors as profile_errors_with

# The worker's source: its own [consumer] rules check the profiles' queue, prefetch and concurrency.
WORKER_SOURCE_DIR = str(Path(__file__).resolve().parents[3] / "worker")


def profile_errors(profiles):
    return profile_errors_with(profiles, WORKER_SOURCE_DIR)


PROFILE = {
    "name": "orders",
    "queue": "order.events",
    "instances": 2,
    "prefetch": 32,
    "concurrency": 8,
    "handlers": {"order.*": "warren.handlers:order_event"},
}


def test_instances_are_numbered_per_profile_with_distinct_metrics_ports():
    jobs = dict(PROFILE, name="jobs", queue="jobs", instances=1)
    idle = dict(PROFILE, name="idle", instances=0)
    assert worker_instances([PROFILE, idle, jobs], metrics_base_port=9420) == [
        {"profile": "orders", "instance": "orders-1", "metrics_port": 9421},
        {"profile": "orders", "instance": "orders-2", "metrics_port": 9422},
        {"profile": "jobs", "instance": "jobs-1", "metrics_port": 9441},
    ]


def test_metrics_disabled_gives_port_zero():
    assert {i["metrics_port"] for i in worker_instances([PROFILE])} == {0}


def test_endpoints_put_the_local_broker_first_over_loopback():
    hostvars = {
        "mq-1": {"ansible_host": "10.0.0.1"},
        "mq-2": {"warren_amqp_address": "mq-2.internal", "ansible_host": "10.0.0.2"},
        "mq-3": {},
    }
    brokers = ["mq-1", "mq-2", "mq-3"]
    assert amqp_endpoints(brokers, hostvars, "mq-2", 5672) == [
        "amqp://127.0.0.1:5672",
        "amqp://10.0.0.1:5672",
        "amqp://mq-3:5672",
    ]
    assert amqp_endpoints(brokers, hostvars, "app-1", 5671) == [
        "amqp://10.0.0.1:5671",
        "amqp://mq-2.internal:5671",
        "amqp://mq-3:5671",
    ]
    assert amqp_endpoints([], hostvars, "app-1", 5672) == []


def test_amqps_endpoints_name_every_broker_as_its_certificate_does():
    hostvars = {"mq-1": {"ansible_host": "10.0.0.1"}, "mq-2": {"warren_amqp_address": "mq-2.internal"}}
    # Its own broker first, but by its address: 127.0.0.1 is not a name a brought certificate carries.
    assert amqp_endpoints(["mq-1", "mq-2"], hostvars, "mq-2", 5671, "amqps") == [
        "amqps://mq-2.internal:5671",
        "amqps://10.0.0.1:5671",
    ]


def test_valid_profiles_have_no_errors():
    assert profile_errors([PROFILE, dict(PROFILE, name="jobs", instances=0)]) == []


def broken(**changes):
    profile = copy.deepcopy(PROFILE)
    for key, value in changes.items():
        if value is None:
            del profile[key]
        else:
            profile[key] = value
    return profile


@pytest.mark.parametrize(
    ("profile", "error"),
    [
        (broken(name="Orders"), "warren_worker_profiles[0] (Orders): name must match ^[a-z][a-z0-9_]*$"),
        (broken(queue=""), "warren_worker_profiles[0] (orders): consumer.queue must not be empty"),
        (broken(instances=-1), "warren_worker_profiles[0] (orders): instances must be an integer >= 0"),
        (broken(instances="2"), "warren_worker_profiles[0] (orders): instances must be an integer >= 0"),
        (
            broken(prefetch=70000),
            "warren_worker_profiles[0] (orders): consumer.prefetch must be between 1 and 65535",
        ),
        (
            broken(concurrency=True),
            "warren_worker_profiles[0] (orders): consumer.concurrency must be an integer, got a boolean",
        ),
        (
            broken(concurrency=64),
            "warren_worker_profiles[0] (orders): consumer.concurrency (64) must not exceed consumer.prefetch (32)",
        ),
        (
            broken(handlers={}),
            "warren_worker_profiles[0] (orders): handlers must map routing-key patterns to 'package.module:function'",
        ),
        (
            broken(handlers={"order.*": "warren.handlers.order_event"}),
            "warren_worker_profiles[0] (orders): handler for 'order.*' must look like 'package.module:function'",
        ),
        (broken(name=None), "warren_worker_profiles[0]: name must match ^[a-z][a-z0-9_]*$"),
    ],
)
def test_each_bad_profile_is_named(profile, error):
    assert profile_errors([profile]) == [error]


def test_all_problems_are_reported_together():
    errors = profile_errors([PROFILE, PROFILE, "jobs", broken(prefetch=0, queue=None)])
    assert errors == [
        "warren_worker_profiles[1] (orders): duplicate profile name",
        "warren_worker_profiles[2]: must be a mapping",
        "warren_worker_profiles[3] (orders): duplicate profile name",
        "warren_worker_profiles[3] (orders): consumer.queue is required",
        "warren_worker_profiles[3] (orders): consumer.prefetch must be between 1 and 65535",
        "warren_worker_profiles[3] (orders): consumer.concurrency (8) must not exceed consumer.prefetch (0)",
    ]


def test_profiles_must_be_a_list():
    assert profile_errors({"orders": PROFILE}) == ["warren_worker_profiles must be a list of profiles"]


def test_settings_errors_name_each_setting():
    assert settings_errors(["amqp://127.0.0.1:5672"], "s3cret", 30, "5") == []
    assert settings_errors([], "", 0, 0) == [
        "warren_worker_amqp_endpoints is empty: add broker hosts to the rabbitmq group or list amqp:// URLs",
        "warren_worker_amqp_password is empty: set warren_amqp_password from Ansible Vault "
        "(the local inventory generates one at deploy time)",
        "warren_worker_drain_timeout must be a positive number of seconds, got 0",
        "warren_worker_retry_max_attempts must be an integer >= 1, got 0",
    ]
    assert settings_errors(["mq-1:5672"], "s3cret", "thirty", 5) == [
        "warren_worker_amqp_endpoints: every entry must be an amqp:// or amqps:// URL",
        "warren_worker_drain_timeout must be a positive number of seconds, got 'thirty'",
    ]


def test_heartbeat_takes_the_workers_own_bounds():
    for good in (0, 5, 10, "30", 3600):
        assert heartbeat_errors(good, WORKER_SOURCE_DIR) == [], good
    for bad in (1, 4, 3601, -10, "ten", True, 2.5):
        assert heartbeat_errors(bad, WORKER_SOURCE_DIR) == [
            "warren_worker_amqp_heartbeat must be 0 (off) or between 5 and 3600 seconds "
            f"(shorter ones drop healthy connections on a busy host), got {bad!r}"
        ], bad


def test_log_settings_errors_name_each_setting():
    assert log_settings_errors("10s", 100000, 60, 10) == []
    assert log_settings_errors(30, "0", "0", 0) == []  # bare seconds; extra vars arrive as strings
    assert log_settings_errors("ten seconds", -1, "often", True) == [
        "warren_worker_log_rate_limit_interval must be a systemd time span such as 10s or 1min, got 'ten seconds'",
        "warren_worker_log_rate_limit_burst must be an integer >= 0, got -1",
        "warren_worker_log_summary_interval must be an integer >= 0, got 'often'",
        "warren_worker_log_tutorial_rate must be an integer >= 0, got True",
    ]


# Client certificates (mutual TLS).
def tls_settings(**overrides):
    settings = {
        "client_cert": True,
        "amqp_tls": True,
        "ca_file": "/pki/ca.crt",
        "pki_dir": "/pki",
        "cert_file": "",
        "has_key": False,
        "can_sign": True,
        "valid_days": 365,
        "renew_before_days": 30,
    }
    return {**settings, **overrides}


def test_client_certificate_settings_that_can_work_pass():
    assert tls_client_errors(tls_settings()) == []
    brought = tls_settings(cert_file="/files/w1.crt", has_key=True, can_sign=False, pki_dir="")
    assert tls_client_errors(brought) == []
    # Off: nothing else matters.
    assert tls_client_errors(tls_settings(client_cert=False, amqp_tls=False, ca_file="", can_sign=False)) == []


def test_client_certificate_settings_that_cannot_work_are_named():
    errors = tls_client_errors(tls_settings(amqp_tls=False, ca_file="", renew_before_days=400))
    assert [error.split(":")[0] for error in errors] == [
        "warren_worker_tls_client_cert needs warren_worker_amqp_tls",
        "warren_worker_tls_client_cert needs warren_worker_tls_ca_file (warren_tls_ca_file)",
        "warren_worker_tls_cert_valid_days must be greater than warren_worker_tls_renew_before_days (at least 1), "
        "got 365 and 400",
    ]
    assert tls_client_errors(tls_settings(can_sign=False)) == [
        "warren_worker_tls_client_cert: nothing to sign a client certificate with: no CA key in "
        "warren_worker_tls_pki_dir (ca.key) and no warren_worker_tls_ca_key; bring the CA's key, or each worker "
        "host's certificate (warren_worker_tls_cert_file) and key (warren_worker_tls_key)"
    ]
    assert tls_client_errors(tls_settings(pki_dir="")) == [
        "warren_worker_tls_client_cert needs warren_worker_tls_pki_dir (warren_tls_pki_dir), where the role keeps "
        "the worker hosts' keys and certificates, unless each host brings its own (warren_worker_tls_cert_file)"
    ]
    assert tls_client_errors(tls_settings(cert_file="/files/w1.crt")) == [
        "warren_worker_tls_cert_file and warren_worker_tls_key go together (the key from Ansible Vault)"
    ]


def test_a_certificate_is_issued_by_its_ca_through_the_intermediates_it_carries():
    ca = issue("Deployment CA")
    intermediate = issue("Intermediate CA", ca)
    assert issued_by(cert_pem(issue("w1", ca)[1]), cert_pem(ca[1]))
    chain = cert_pem(issue("w1", intermediate)[1]) + cert_pem(intermediate[1])
    assert issued_by(chain, cert_pem(ca[1]))
    # A bundle of CAs: any of them may have signed it.
    assert issued_by(cert_pem(issue("w1", ca)[1]), cert_pem(issue("Other CA")[1]) + cert_pem(ca[1]))


def test_a_certificate_from_another_ca_is_not_issued_by_the_deployment_ca():
    ca, foreign = issue("Deployment CA"), issue("Deployment CA")  # the same name: only the signature tells
    assert not issued_by(cert_pem(issue("w1", foreign)[1]), cert_pem(ca[1]))
    intermediate = issue("Intermediate CA", ca)
    # Without the intermediate that links it to the CA.
    assert not issued_by(cert_pem(issue("w1", intermediate)[1]), cert_pem(ca[1]))
    assert not issued_by("not a certificate", cert_pem(ca[1]))
