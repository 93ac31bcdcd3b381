"""Unit tests of filter_plugins/gcp_fleet.py: validation messages and rendered specs, no Ansible run."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest
import yaml

ROLE = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("gcp_fleet_filters", ROLE / "filter_plugins" / "gcp_fleet.py")
gcp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gcp)

DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTestsOnly test@warren"


def settings(**overrides):
    """The settings vars/main.yml builds, from the role defaults (templated ones replaced by values)."""
    base = {
        "project": "demo-proj",
        "zone": "europe-west4-b",
        "region": "",
        "auth_kind": "application",
        "service_account_file": "",
        "name": "warren",
        "rabbitmq_count": 3,
        "worker_count": 2,
        "labels": {},
        "rabbitmq_machine_type": "c4a-standard-4",
        "worker_machine_type": "c4a-standard-4",
        "os": "sles",
        "images": copy.deepcopy(DEFAULTS["gcp_fleet_images"]),
        "image": "",
        "image_architecture": "",
        "rabbitmq_disk_size_gb": 50,
        "worker_disk_size_gb": 20,
        "disk_type": "",
        "machine_families": copy.deepcopy(DEFAULTS["gcp_fleet_machine_families"]),
        "network_create": True,
        "network": "warren-net",
        "subnetwork": "warren-subnet",
        "subnet_cidr": "10.42.0.0/24",
        "external_ip": True,
        "admin_cidrs": ["203.0.113.7/32"],
        "allow_world_admin": False,
        "ssh_source": "admin",
        "iap_cidrs": ["35.235.240.0/20"],
        "amqp_ports": ["5672", "5671"],
        "management_ports": ["15672"],
        "prometheus_ports": ["15692"],
        "cluster_ports": ["4369", "25672", "35672-35682"],
        "ssh_port": "22",
        "rabbitmq_tag": "warren-rabbitmq",
        "worker_tag": "warren-worker",
        "ssh_user": "warren-admin",
        "ssh_public_key": KEY,
        "teardown_confirm": "",
    }
    base.update(overrides)
    return base


def test_defaults_are_valid_and_render():
    assert gcp.validate(settings()) == []
    specs = gcp.specs(settings())
    assert [i["name"] for i in specs["instances"]] == [
        "warren-rabbitmq-1",
        "warren-rabbitmq-2",
        "warren-rabbitmq-3",
        "warren-worker-1",
        "warren-worker-2",
    ]
    assert specs["region"] == "europe-west4"
    assert specs["subnetwork"]["region"] == "europe-west4"


def test_defaults_file_matches_test_settings():
    """The fixed values above are the role's real defaults, so the tests exercise what users get."""
    for key in (
        "name",
        "machine_type",
        "os",
        "amqp_ports",
        "management_ports",
        "prometheus_ports",
        "cluster_ports",
        "rabbitmq_tag",
        "worker_tag",
        "ssh_source",
        "admin_cidrs",
        "subnet_cidr",
    ):
        assert f"gcp_fleet_{key}" in DEFAULTS
    assert DEFAULTS["gcp_fleet_machine_type"] == "c4a-standard-4"
    assert DEFAULTS["gcp_fleet_admin_cidrs"] == []  # no default: operators must choose
    assert DEFAULTS["gcp_fleet_images"]["sles"]["image"] == "projects/suse-cloud/global/images/family/sles-15-arm64"


def test_firewall_rules():
    rules = {r["name"]: r for r in gcp.specs(settings())["firewalls"]}
    assert sorted(rules) == sorted(gcp.firewall_names(settings()))
    amqp = rules["warren-allow-amqp"]
    assert amqp["source_tags"] == ["warren-worker"] and amqp["target_tags"] == ["warren-rabbitmq"]
    assert "source_ranges" not in amqp
    assert amqp["allowed"] == [{"ip_protocol": "tcp", "ports": ["5672", "5671"]}]
    for name, port in (("warren-allow-management", "15672"), ("warren-allow-prometheus", "15692")):
        assert rules[name]["source_ranges"] == ["203.0.113.7/32"]
        assert "source_tags" not in rules[name]
        assert rules[name]["allowed"][0]["ports"] == [port]
        assert rules[name]["target_tags"] == ["warren-rabbitmq"]
    cluster = rules["warren-allow-cluster"]
    assert cluster["source_tags"] == cluster["target_tags"] == ["warren-rabbitmq"]
    assert cluster["allowed"][0]["ports"] == ["4369", "25672", "35672-35682"]
    assert rules["warren-allow-ssh"]["source_ranges"] == ["203.0.113.7/32"]
    assert rules["warren-allow-ssh"]["target_tags"] == ["warren-rabbitmq", "warren-worker"]
    for rule in rules.values():
        assert rule["direction"] == "INGRESS"
        assert rule["network"]["selfLink"].endswith("/projects/demo-proj/global/networks/warren-net")


def test_ssh_through_iap():
    rules = {r["name"]: r for r in gcp.specs(settings(ssh_source="iap"))["firewalls"]}
    assert rules["warren-allow-ssh"]["source_ranges"] == ["35.235.240.0/20"]
    assert rules["warren-allow-management"]["source_ranges"] == ["203.0.113.7/32"]


@pytest.mark.parametrize(
    ("machine_type", "disk_type", "maintenance"),
    [
        ("c4a-standard-4", "hyperdisk-balanced", "MIGRATE"),
        ("c4a-highmem-8", "hyperdisk-balanced", "MIGRATE"),
        ("t2a-standard-4", "pd-balanced", "TERMINATE"),
    ],
)
def test_instance_spec_per_family(machine_type, disk_type, maintenance):
    spec = gcp.specs(settings(rabbitmq_machine_type=machine_type, worker_count=0))["instances"][0]
    assert spec["machine_type"] == machine_type
    boot = spec["disks"][0]
    assert boot["boot"] and boot["auto_delete"]
    assert boot["initialize_params"] == {
        "source_image": "projects/suse-cloud/global/images/family/sles-15-arm64",
        "disk_type": disk_type,
        "disk_size_gb": 50,
    }
    assert spec["scheduling"]["on_host_maintenance"] == maintenance
    nic = spec["network_interfaces"][0]
    assert nic["nic_type"] == "GVNIC"
    assert nic["access_configs"] == [{"name": "External NAT", "type": "ONE_TO_ONE_NAT"}]
    assert nic["subnetwork"]["selfLink"].endswith("/projects/demo-proj/regions/europe-west4/subnetworks/warren-subnet")
    assert spec["labels"] == {"warren-fleet": "warren", "warren-role": "rabbitmq"}
    assert spec["tags"] == {"items": ["warren-rabbitmq"]}
    assert spec["metadata"]["ssh-keys"] == f"warren-admin:{KEY}"


def test_worker_spec_leap_internal_only():
    specs = gcp.specs(settings(os="leap", external_ip=False, labels={"team": "billing"}, worker_disk_size_gb="30"))
    worker = specs["instances"][-1]
    assert worker["name"] == "warren-worker-2"
    assert worker["labels"] == {"team": "billing", "warren-fleet": "warren", "warren-role": "workers"}
    assert worker["tags"] == {"items": ["warren-worker"]}
    assert (
        worker["disks"][0]["initialize_params"]["source_image"]
        == "projects/opensuse-cloud/global/images/family/opensuse-leap-arm64"
    )
    assert worker["disks"][0]["initialize_params"]["disk_size_gb"] == 30
    assert "access_configs" not in worker["network_interfaces"][0]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"rabbitmq_machine_type": "z9-standard-4"}, "unknown machine family 'z9'"),
        (
            {"worker_machine_type": "n2-standard-4"},
            "gcp_fleet_worker_machine_type: n2-standard-4 is an x86_64 machine type but the selected image is arm64",
        ),
        ({"rabbitmq_machine_type": "c3-standard-4"}, "c3-standard-4 is an x86_64 machine type"),
        ({"admin_cidrs": []}, "gcp_fleet_admin_cidrs is empty"),
        ({"admin_cidrs": ["0.0.0.0/0"]}, "set gcp_fleet_allow_world_admin: true"),
        ({"admin_cidrs": ["10.0.0.1/8"]}, "is not a CIDR"),
        ({"admin_cidrs": ["203.0.113.0/24", "2001:db8::/32"]}, "mixes IPv4 and IPv6"),
        ({"disk_type": "pd-balanced"}, "'pd-balanced' cannot be attached to c4a-standard-4"),
        ({"project": ""}, "gcp_fleet_project is empty"),
        ({"zone": "us-central1"}, "is not a zone like us-central1-a"),
        ({"region": "us-east1"}, "is not in gcp_fleet_region us-east1"),
        ({"auth_kind": "serviceaccount"}, "gcp_fleet_service_account_file is empty"),
        ({"auth_kind": "serviceaccount", "service_account_file": "/nonexistent/key.json"}, "is not a file"),
        ({"auth_kind": "token"}, "gcp_fleet_auth_kind: 'token' is not one of"),
        ({"name": "Warren_1"}, "gcp_fleet_name: 'Warren_1'"),
        ({"rabbitmq_count": 0}, "gcp_fleet_rabbitmq_count must be an integer from 1"),
        ({"os": "ubuntu"}, "gcp_fleet_os: 'ubuntu' is not a key of gcp_fleet_images"),
        ({"image": "projects/x/global/images/custom"}, "set gcp_fleet_image_architecture"),
        (
            {"image": "projects/x/global/images/custom", "image_architecture": "x86_64"},
            "c4a-standard-4 is an arm64 machine type but the selected image is x86_64",
        ),
        ({"ssh_public_key": ""}, "gcp_fleet_ssh_public_key is empty or not an OpenSSH public key"),
        ({"cluster_ports": ["25672", "70000"]}, "'70000' is not a port"),
        ({"worker_tag": "warren-rabbitmq"}, "must differ"),
        ({"labels": {"warren-role": "x"}}, "warren-role is set by the role itself"),
        ({"subnet_cidr": "8.8.8.0/24"}, "gcp_fleet_subnet_cidr"),
        ({"ssh_source": "anywhere"}, "gcp_fleet_ssh_source: 'anywhere'"),
    ],
)
def test_bad_settings_are_rejected(overrides, message):
    errors = gcp.validate(settings(**overrides))
    assert any(message in e for e in errors), errors
    with pytest.raises(Exception, match="Invalid gcp_fleet settings"):
        gcp.specs(settings(**overrides))


def test_every_problem_is_reported_at_once():
    errors = gcp.validate(settings(admin_cidrs=[], rabbitmq_machine_type="n2-standard-4", project=""))
    assert len(errors) == 3, errors


def test_world_admin_when_allowed():
    assert gcp.validate(settings(admin_cidrs=["0.0.0.0/0"], allow_world_admin=True)) == []


def test_no_workers_skips_worker_machine_checks():
    assert gcp.validate(settings(worker_count=0, worker_machine_type="n2-standard-2")) == []


def test_teardown_needs_confirmation():
    assert any("-e gcp_fleet_teardown_confirm=warren" in e for e in gcp.validate_teardown(settings()))
    assert gcp.validate_teardown(settings(teardown_confirm="warren")) == []
    # Teardown does not need the provisioning-only values.
    assert gcp.validate_teardown(settings(teardown_confirm="warren", admin_cidrs=[], ssh_public_key="")) == []


def _created(name, nat_ip=None, ssh_keys=None, tags=None, spec_key=KEY, spec_tags=("warren-rabbitmq",)):
    """One result of the instances task: the module's view of the instance, and the spec it was called with."""
    interface = {"networkIP": "10.42.0.2"}
    if nat_ip:
        interface["accessConfigs"] = [{"name": "External NAT", "type": "ONE_TO_ONE_NAT", "natIP": nat_ip}]
    spec = {
        "name": name,
        "zone": "europe-west4-b",
        "metadata": {"ssh-keys": f"warren-admin:{spec_key}", "enable-oslogin": "FALSE"},
        "tags": {"items": list(spec_tags)},
    }
    return {
        "name": name,
        "networkInterfaces": [interface],
        "metadata": {"ssh-keys": ssh_keys if ssh_keys is not None else f"warren-admin:{spec_key}"},
        "tags": {"fingerprint": "abc", "items": list(tags if tags is not None else spec_tags)},
        "item": spec,
    }


def test_item3_with_iap_ssh_nothing_is_waited_for_on_external_ips():
    results = [_created("warren-rabbitmq-1", "203.0.113.10"), _created("warren-worker-1", "203.0.113.11")]
    assert gcp.ssh_wait_addresses(results, settings(ssh_source="iap")) == []


def test_item3_with_admin_ssh_the_external_ips_are_waited_for_and_internal_only_instances_skipped():
    results = [_created("warren-rabbitmq-1", "203.0.113.10"), _created("warren-worker-1")]
    assert gcp.ssh_wait_addresses(results, settings(ssh_source="admin")) == [
        {"name": "warren-rabbitmq-1", "address": "203.0.113.10"}
    ]


def _existing(spec, ssh_keys=None, tags=None):
    """An instance as the API lists it (gcp_compute_instance_info): metadata as key/value items."""
    return {
        "name": spec["name"],
        "metadata": {
            "fingerprint": "xyz",
            "items": [{"key": "ssh-keys", "value": ssh_keys or spec["metadata"]["ssh-keys"]}],
        },
        "tags": {"fingerprint": "abc", "items": list(tags if tags is not None else spec["tags"]["items"])},
    }


def test_item4_new_instances_and_instances_matching_their_spec_have_no_drift():
    instances = gcp.specs(settings())["instances"]
    assert gcp.instance_drift([], instances) == []
    assert gcp.instance_drift([_existing(i) for i in instances], instances) == []


def test_item4_a_changed_ssh_key_on_an_existing_instance_is_reported_with_the_command_that_applies_it():
    instances = gcp.specs(settings())["instances"]
    [message] = gcp.instance_drift(
        [_existing(instances[0], ssh_keys="warren-admin:ssh-ed25519 AAAAold old")], instances
    )
    assert message.startswith(f"{instances[0]['name']}: its ssh-keys metadata is not gcp_fleet_ssh_user/")
    assert (
        f"gcloud compute instances add-metadata {instances[0]['name']} --zone europe-west4-b "
        f"--metadata ssh-keys='{instances[0]['metadata']['ssh-keys']}'" in message
    )


def test_item4_changed_network_tags_are_reported_with_add_and_remove_commands():
    instances = gcp.specs(settings())["instances"]
    worker = next(i for i in instances if i["name"].endswith("worker-1"))
    [message] = gcp.instance_drift([_existing(worker, tags=["old-tag"])], instances)
    assert "its network tags are ['old-tag'], the fleet's are ['warren-worker']" in message
    assert f"gcloud compute instances add-tags {worker['name']} --zone europe-west4-b --tags warren-worker" in message
    assert f"gcloud compute instances remove-tags {worker['name']} --zone europe-west4-b --tags old-tag" in message
