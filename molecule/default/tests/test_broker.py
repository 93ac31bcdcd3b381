"""The broker node: service, listeners, plugins, limits, secrets and access control."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import admin_credentials, http_status, rabbitmqadmin


def test_service_active_and_enabled(host: Any) -> None:
    service = host.service("rabbitmq-server")
    assert service.is_running
    assert service.is_enabled


# Plain listeners are loopback-only by default; the TLS ones are in test_tls.py.
@pytest.mark.parametrize("port", [5672, 15672, 15692])
def test_broker_listens_on_plain_amqp_management_and_prometheus_on_loopback(host: Any, port: int) -> None:
    assert host.socket(f"tcp://127.0.0.1:{port}").is_listening


def test_management_and_prometheus_plugins_enabled(host: Any) -> None:
    plugins = host.run_expect([0], "rabbitmq-plugins list --enabled --minimal").stdout.split()
    assert "rabbitmq_management" in plugins
    assert "rabbitmq_prometheus" in plugins


def test_management_api_answers_admin(host: Any) -> None:
    user, password = admin_credentials(host)
    assert http_status(host, "http://127.0.0.1:15672/api/overview", user, password) == 200


def test_management_api_refuses_guest(host: Any) -> None:
    assert http_status(host, "http://127.0.0.1:15672/api/overview", "guest", "guest") == 401


def test_management_api_refuses_wrong_password(host: Any) -> None:
    user, _ = admin_credentials(host)
    assert http_status(host, "http://127.0.0.1:15672/api/overview", user, "not-the-password") == 401


def test_guest_removed_and_admin_is_administrator(host: Any) -> None:
    users = {u["name"]: u for u in rabbitmqadmin(host, "list", "users")}
    assert "guest" not in users
    user, _ = admin_credentials(host)
    assert "administrator" in str(users[user]["tags"])


def test_prometheus_endpoint_serves_metrics(host: Any) -> None:
    metrics = host.run_expect(
        [0],
        'python3 -c "import urllib.request; '
        "print(urllib.request.urlopen('http://127.0.0.1:15692/metrics').read().decode())\"",
    )
    assert "rabbitmq_build_info" in metrics.stdout


def test_node_gets_65536_open_files_or_the_containers_hard_ceiling(host: Any) -> None:
    # The drop-in asks for 65536. The kernel caps it at the hard limit the container was started with, which
    # is lower on some CI VMs (they lack CAP_SYS_RESOURCE): the running node must get min(65536, that ceiling).
    configured = host.run_expect([0], "systemctl show rabbitmq-server -p LimitNOFILE --value").stdout.strip()
    assert int(configured) >= 65536
    ceiling = int(host.run_expect([0], "sh -c 'ulimit -Hn'").stdout.strip())
    pid = host.run_expect([0], "systemctl show rabbitmq-server -p MainPID --value").stdout.strip()
    limits = host.file(f"/proc/{pid}/limits").content_string
    soft = int(next(line for line in limits.splitlines() if line.startswith("Max open files")).split()[3])
    assert soft == min(int(configured), ceiling)


def test_erlang_cookie_is_private(host: Any) -> None:
    cookie = host.file("/var/lib/rabbitmq/.erlang.cookie")
    assert cookie.user == "rabbitmq"
    assert cookie.mode == 0o400


def test_rabbitmqadmin_config_is_private(host: Any) -> None:
    config = host.file("/root/.rabbitmqadmin.conf")
    assert config.mode == 0o600
    assert config.user == "root"


def test_config_loads_definitions_at_boot(host: Any) -> None:
    config = host.file("/etc/rabbitmq/rabbitmq.conf").content_string
    assert "definitions.local.path = /etc/rabbitmq/definitions.json" in config
    assert "definitions.skip_if_unchanged = true" in config


def test_config_sets_classic_queue_storage_version_2(host: Any) -> None:
    config = host.file("/etc/rabbitmq/rabbitmq.conf").content_string
    assert "classic_queue.default_version = 2" in config
