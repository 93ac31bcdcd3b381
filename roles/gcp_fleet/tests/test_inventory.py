"""inventory/gcp.gcp_compute.yml: its options checked by the plugin itself, and a real `ansible-inventory`
run against a faked Compute Engine API (no network: see conftest and fakegcp/)."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
import yaml
from conftest import REPO, unwrap

INVENTORY = REPO / "inventory" / "gcp.gcp_compute.yml"
LINKED = REPO / "inventory" / "gcp" / "gcp.gcp_compute.yml"
DEFAULTS = yaml.safe_load((REPO / "roles" / "gcp_fleet" / "defaults" / "main.yml").read_text())
PROJECT = "my-warren-project"
API = "https://www.googleapis.com/compute/v1/projects/" + PROJECT


@functools.cache
def _init_plugin_loader() -> None:
    from ansible.plugins.loader import init_plugin_loader

    init_plugin_loader()


def _plugin():
    from ansible.plugins.loader import inventory_loader

    _init_plugin_loader()
    plugin = inventory_loader.get("google.cloud.gcp_compute")
    assert plugin is not None, "google.cloud collection missing from the controller venv"
    return plugin


def _read_options(path: Path):
    """What the plugin's parse() does before its first API call: verify_file, then _read_config_data, which
    validates every option value against the plugin's documented types and choices (AnsibleOptionsError)."""
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar

    plugin = _plugin()
    assert plugin.verify_file(str(path)), f"{path} is not accepted by google.cloud.gcp_compute"
    plugin.loader = DataLoader()
    plugin.templar = Templar(loader=plugin.loader)
    plugin._vars = {}
    config = plugin._read_config_data(str(path))
    return plugin, config


def _unknown_options(plugin, config) -> list[str]:
    # The plugin silently ignores keys it does not define; a typo would just switch a feature off. Catch it.
    return sorted(set(config) - {"plugin"} - set(plugin._options))


def test_options_are_valid_and_known():
    plugin, config = _read_options(INVENTORY)
    assert _unknown_options(plugin, config) == []
    assert plugin.get_option("auth_kind") in ("application", "serviceaccount")
    assert plugin.get_option("projects") == [PROJECT]
    assert plugin.get_option("hostnames") == ["name"]
    assert plugin.get_option("filters") == ["status = RUNNING", "labels.warren-fleet = " + DEFAULTS["gcp_fleet_name"]]
    assert plugin.get_option("keyed_groups") == [{"key": "labels['warren-role']", "prefix": "", "separator": ""}]
    assert (
        plugin._get_query_options(plugin.get_option("filters")) == "(status = RUNNING) (labels.warren-fleet = warren)"
    )
    assert "ansible_host" in plugin.get_option("compose")


def test_linked_copy_is_the_same_file():
    assert LINKED.is_symlink() and LINKED.resolve() == INVENTORY.resolve()


def test_a_typo_is_caught(tmp_path):
    text = INVENTORY.read_text().replace("keyed_groups:", "keyed_group:")
    typo = tmp_path / "typo.gcp_compute.yml"
    typo.write_text(text)
    plugin, config = _read_options(typo)
    assert _unknown_options(plugin, config) == ["keyed_group"]


def test_a_bad_value_is_rejected_by_the_plugin(tmp_path):
    from ansible.errors import AnsibleError

    bad = tmp_path / "bad.gcp_compute.yml"
    bad.write_text(INVENTORY.read_text().replace("auth_kind: application", "auth_kind: password"))
    with pytest.raises(AnsibleError, match="auth_kind"):
        _read_options(bad)


def test_wrong_file_name_is_not_picked_up(tmp_path):
    other = tmp_path / "gcp-fleet.yml"
    other.write_text(INVENTORY.read_text())
    assert not _plugin().verify_file(str(other))


def _instance(name, role, internal, external=None):
    nic = {
        "network": f"{API}/global/networks/warren-net",
        "subnetwork": f"{API}/regions/us-central1/subnetworks/warren-subnet",
        "networkIP": internal,
        "nicType": "GVNIC",
    }
    if external:
        nic["accessConfigs"] = [{"name": "External NAT", "type": "ONE_TO_ONE_NAT", "natIP": external}]
    return {
        "name": name,
        "status": "RUNNING",
        "selfLink": f"{API}/zones/us-central1-a/instances/{name}",
        "zone": f"{API}/zones/us-central1-a",
        "machineType": f"{API}/zones/us-central1-a/machineTypes/c4a-standard-4",
        "labels": {"warren-fleet": "warren", "warren-role": role},
        "tags": {"items": [f"warren-{'rabbitmq' if role == 'rabbitmq' else 'worker'}"]},
        "networkInterfaces": [nic],
    }


@pytest.fixture
def fleet(offline):
    offline.instances.write_text(
        json.dumps(
            {
                "items": {
                    "zones/us-central1-a": {
                        "instances": [
                            _instance("warren-rabbitmq-1", "rabbitmq", "10.42.0.2", "203.0.113.10"),
                            _instance("warren-worker-1", "workers", "10.42.0.3", "203.0.113.11"),
                            _instance("warren-worker-2", "workers", "10.42.0.4"),
                        ]
                    },
                    "zones/us-central1-b": {"warning": {"code": "NO_RESULTS_ON_PAGE"}},
                }
            }
        )
    )
    return offline


def _list(offline, *args, env=None):
    result = offline.run("ansible-inventory", "-i", "inventory/gcp", "--list", *args, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not [r for r in offline.requests() if "blocked" in r], offline.requests()
    return unwrap(json.loads(result.stdout))


def test_list_builds_groups_hosts_and_vars(fleet):
    inventory = _list(fleet)
    assert inventory["rabbitmq"]["hosts"] == ["warren-rabbitmq-1"]
    assert sorted(inventory["workers"]["hosts"]) == ["warren-worker-1", "warren-worker-2"]
    hostvars = inventory["_meta"]["hostvars"]
    assert hostvars["warren-rabbitmq-1"]["ansible_host"] == "203.0.113.10"
    assert hostvars["warren-worker-2"]["ansible_host"] == "10.42.0.4"  # no external IP: internal
    assert hostvars["warren-worker-1"]["warren_internal_ip"] == "10.42.0.3"
    assert hostvars["warren-worker-1"]["warren_machine_type"] == "c4a-standard-4"
    assert hostvars["warren-worker-1"]["gcp_labels"]["warren-role"] == "workers"
    # group_vars next to the inventory source (inventory/gcp/group_vars) apply
    assert hostvars["warren-rabbitmq-1"]["ansible_user"] == "warren-admin"
    assert hostvars["warren-rabbitmq-1"]["ansible_python_interpreter"] == "/usr/bin/python3.11"
    # what was asked of Google: one aggregatedList of the configured project with the configured filters
    calls = [r for r in fleet.requests() if r["host"] == "www.googleapis.com"]
    assert [(c["method"], c["path"]) for c in calls] == [
        ("GET", f"/compute/v1/projects/{PROJECT}/aggregated/instances")
    ]
    assert calls[0]["query"]["filter"] == "(status = RUNNING) (labels.warren-fleet = warren)"


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (("-e", "warren_gcp_address=internal"), None),
        ((), {"WARREN_GCP_ADDRESS": "internal"}),
    ],
)
def test_internal_address_switch(fleet, args, env):
    hostvars = _list(fleet, *args, env=env)["_meta"]["hostvars"]
    assert hostvars["warren-rabbitmq-1"]["ansible_host"] == "10.42.0.2"
    assert hostvars["warren-worker-1"]["ansible_host"] == "10.42.0.3"


def test_extra_var_beats_environment(fleet):
    hostvars = _list(fleet, "-e", "warren_gcp_address=external", env={"WARREN_GCP_ADDRESS": "internal"})
    assert hostvars["_meta"]["hostvars"]["warren-rabbitmq-1"]["ansible_host"] == "203.0.113.10"


def test_item2_workers_reach_the_brokers_on_their_internal_ips(fleet):
    """The worker role's own endpoint filter, fed the composed host variables of a real inventory run: a worker's
    broker endpoints are internal addresses (the only ones the AMQP firewall rule admits), whatever ansible_host."""
    env = {
        "ANSIBLE_FILTER_PLUGINS": str(REPO / "roles" / "warren_worker" / "filter_plugins"),
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
    }
    result = fleet.run(
        "ansible",
        "-i",
        "inventory/gcp",
        "warren-worker-1",
        "-m",
        "ansible.builtin.debug",
        "-a",
        "msg={{ groups['rabbitmq'] | warren_amqp_endpoints(hostvars, inventory_hostname, 5672) }}",
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    endpoints = unwrap(json.loads(result.stdout))["plays"][0]["tasks"][0]["hosts"]["warren-worker-1"]["msg"]
    assert endpoints == ["amqp://10.42.0.2:5672"]
    hostvars = _list(fleet)["_meta"]["hostvars"]
    assert hostvars["warren-rabbitmq-1"]["warren_amqp_address"] == "10.42.0.2"
    assert hostvars["warren-rabbitmq-1"]["ansible_host"] == "203.0.113.10"
