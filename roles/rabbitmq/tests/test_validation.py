"""Real ansible-playbook runs of the role's checks (tasks/validate.yml) on localhost, no host and no broker: each bad
Erlang cookie, administrator account, listener port set and resource limit stops the play before anything is
installed, with a message naming the variable, and never echoes the secret it refused. The defaults pass."""

import sys
from pathlib import Path

import pytest
import yaml

# The run and the reading of its failure are shared by the role tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "molecule" / "resources"))
from role_validation import failure_lines, run_role_validation

ROLE_DIR = Path(__file__).resolve().parents[1]

# The role loads vars/<OsFamily>.yml from gathered facts before validating; this run gathers none, so it is given
# Debian 12's facts and that family's install methods and packages (what this machine would load).
OS_VARS = yaml.safe_load((ROLE_DIR / "vars" / "Debian.yml").read_text(encoding="utf-8"))
GOOD = {
    "ansible_facts": {"os_family": "Debian", "distribution": "Debian", "distribution_version": "12.8"},
    "rabbitmq_erlang_cookie": "A" * 20,
    "rabbitmq_admin_password": "twelve-chars",
    # Where the deployment's CA and certificates would be generated (only checked here, never written).
    "rabbitmq_tls_pki_dir": "/nonexistent/tls",
    "__rabbitmq_install_methods": OS_VARS["__rabbitmq_install_methods"],
    "__rabbitmq_release_packages": OS_VARS["__rabbitmq_release_packages"],
}

COOKIE_ERROR = "rabbitmq_erlang_cookie must be 20 to 255 characters of A-Z, a-z and 0-9"
ADMIN_ERROR = (
    "rabbitmq_admin_user must be set and not 'guest', and rabbitmq_admin_password must be at least 12 characters"
)


def run_validation(tmp_path, **overrides):
    return run_role_validation("rabbitmq", tmp_path, {**GOOD, **overrides})


def assert_refused(result, message, secret=None):
    assert failure_lines(result) == [message]
    assert "failed=1 " in result.stdout
    if secret:
        assert secret not in result.stdout + result.stderr, "the refused secret must not reach the output"


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {  # every value just inside its limit
            "rabbitmq_erlang_cookie": "Z9" * 10,
            "rabbitmq_admin_password": "x" * 12,
            "rabbitmq_amqp_port": 1,
            "rabbitmq_management_port": 65535,
            "rabbitmq_vm_memory_high_watermark": 0.99,
            "rabbitmq_nofile_limit": 65536,
        },
        {"rabbitmq_erlang_cookie": "a1" * 127 + "b"},  # the longest cookie allowed, 255
    ],
    ids=["defaults", "at-the-limits", "cookie-255"],
)
def test_good_values_pass(tmp_path, overrides):
    result = run_validation(tmp_path, **overrides)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "failed=0 " in result.stdout


@pytest.mark.parametrize(
    "cookie",
    ["Short1234567890abcd", "a1" * 128, "has-a-dash-in-it-0123", ""],
    ids=["19-characters", "256-characters", "dash", "empty"],
)
def test_bad_erlang_cookie_is_refused(tmp_path, cookie):
    assert_refused(run_validation(tmp_path, rabbitmq_erlang_cookie=cookie), COOKIE_ERROR, secret=cookie)


@pytest.mark.parametrize(
    "overrides",
    [
        {"rabbitmq_admin_password": "eleven-char"},
        {"rabbitmq_admin_password": ""},
        {"rabbitmq_admin_user": "guest"},
        {"rabbitmq_admin_user": ""},
    ],
    ids=["password-11", "password-empty", "user-guest", "user-empty"],
)
def test_bad_administrator_account_is_refused(tmp_path, overrides):
    result = run_validation(tmp_path, **overrides)
    assert_refused(result, ADMIN_ERROR, secret=overrides.get("rabbitmq_admin_password"))


@pytest.mark.parametrize(
    ("overrides", "shown"),
    [
        ({"rabbitmq_amqp_port": 0}, "0, 15672, 15692, 5671, 15671, 15691"),
        ({"rabbitmq_prometheus_port": 65536}, "5672, 15672, 65536, 5671, 15671, 15691"),
        ({"rabbitmq_management_port": 5672}, "5672, 5672, 15692, 5671, 15671, 15691"),
        ({"rabbitmq_amqps_port": 15671}, "5672, 15672, 15692, 15671, 15671, 15691"),
    ],
    ids=["zero", "above-65535", "two-listeners-on-one-port", "amqps-on-the-https-port"],
)
def test_bad_listener_ports_are_refused(tmp_path, overrides, shown):
    assert_refused(
        run_validation(tmp_path, **overrides),
        "rabbitmq_amqp_port, rabbitmq_management_port, rabbitmq_prometheus_port, rabbitmq_amqps_port, "
        "rabbitmq_management_tls_port and rabbitmq_prometheus_tls_port must be distinct ports from 1 to 65535 "
        f"(got {shown})",
    )


@pytest.mark.parametrize(
    ("overrides", "watermark", "nofile"),
    [
        ({"rabbitmq_vm_memory_high_watermark": 0}, "0", "65536"),
        ({"rabbitmq_vm_memory_high_watermark": 1}, "1", "65536"),
        ({"rabbitmq_nofile_limit": 1024}, "0.4", "1024"),
    ],
    ids=["watermark-0", "watermark-1", "nofile-1024"],
)
def test_bad_resource_limits_are_refused(tmp_path, overrides, watermark, nofile):
    assert_refused(
        run_validation(tmp_path, **overrides),
        f"rabbitmq_vm_memory_high_watermark must be between 0 and 1 (got {watermark}) and rabbitmq_nofile_limit at "
        f"least 65536 (got {nofile})",
    )


def test_plugins_without_management_are_refused(tmp_path):
    assert_refused(
        run_validation(tmp_path, rabbitmq_plugins=["rabbitmq_prometheus"]),
        "rabbitmq_plugins must include rabbitmq_management (rabbitmqadmin, health checks and the tests use it)",
    )


CLUSTER = ["localhost", "warren-broker-2", "warren-broker-3"]


def run_cluster_validation(tmp_path, cookies, **overrides):
    """The validation on localhost as the first of a 3-host rabbitmq group whose hosts have `cookies` (the peers are
    never contacted: only their inventory variables are read)."""
    hosts = "".join(
        f"        {host}:\n          rabbitmq_erlang_cookie: {cookie}\n"
        for host, cookie in zip(CLUSTER, cookies, strict=True)
    )
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(f"all:\n  children:\n    rabbitmq:\n      hosts:\n{hosts}")
    good = {key: value for key, value in GOOD.items() if key != "rabbitmq_erlang_cookie"}
    return run_role_validation("rabbitmq", tmp_path, {**good, **overrides}, inventory=inventory)


def test_one_cookie_for_the_whole_cluster_passes(tmp_path):
    result = run_cluster_validation(tmp_path, ["A" * 20] * 3)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_cookie_that_differs_between_hosts_is_refused_without_showing_it(tmp_path):
    result = run_cluster_validation(tmp_path, ["A" * 20, "A" * 20, "B" * 20])
    assert_refused(
        result,
        "rabbitmq_erlang_cookie of warren-broker-3 is missing or differs from localhost's, and all of localhost, "
        "warren-broker-2, warren-broker-3 form one cluster, whose nodes authenticate each other with it. Set "
        "rabbitmq_erlang_cookie once for the whole group (group_vars/rabbitmq or group_vars/all, from Ansible "
        "Vault), not per host. Nothing was changed.",
        secret="B" * 20,
    )


def test_pause_minority_on_two_nodes_is_refused(tmp_path):
    result = run_cluster_validation(
        tmp_path,
        ["A" * 20] * 3,
        rabbitmq_cluster_hosts=CLUSTER[:2],
        rabbitmq_cluster_partition_handling="pause_minority",
    )
    assert_refused(
        result,
        "localhost must be one of rabbitmq_cluster_hosts (localhost, warren-broker-2), and "
        "rabbitmq_cluster_partition_handling=pause_minority needs 3 or more nodes (got 2: a split of 2 nodes leaves "
        "no majority, and both would pause); use autoheal for 2 nodes",
    )


def test_no_tls_with_loopback_only_plain_listeners_is_refused(tmp_path):
    assert_refused(
        run_validation(tmp_path, rabbitmq_tls_enabled=False),
        "rabbitmq_tls_enabled=false with rabbitmq_plain_listeners=loopback leaves no listener other hosts can "
        "reach: enable TLS (the default) or set rabbitmq_plain_listeners=all",
    )


def test_mutual_tls_without_tls_is_refused(tmp_path):
    assert_refused(
        run_validation(
            tmp_path, rabbitmq_tls_enabled=False, rabbitmq_plain_listeners="all", warren_tls_verify_peer=True
        ),
        "rabbitmq_tls_verify_peer=true (warren_tls_verify_peer) needs rabbitmq_tls_enabled: client certificates are "
        "asked for on the TLS listener only, and plain AMQP would take passwords without one",
    )


@pytest.mark.parametrize(
    "overrides",
    [
        {"rabbitmq_tls_pki_dir": ""},
        {"rabbitmq_tls_cert_file": "/brought/broker.crt"},
        {"rabbitmq_tls_ca_generate": False},
        {"rabbitmq_tls_renew_before_days": 400},
    ],
    ids=["no-pki-dir", "certificate-without-key", "no-ca-and-no-way-to-sign", "renewal-beyond-validity"],
)
def test_tls_certificate_sources_that_cannot_work_are_refused(tmp_path, overrides):
    result = run_validation(tmp_path, **overrides)
    assert len(failure_lines(result)) == 1
    assert failure_lines(result)[0].startswith("TLS needs rabbitmq_tls_pki_dir")
