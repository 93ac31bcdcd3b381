"""The provisioning and teardown playbooks, run for real on localhost with the network cut (see conftest)."""

from __future__ import annotations

import json

import pytest
from conftest import SSH_KEY

VALID = {
    "gcp_fleet_project": "demo-proj",
    "gcp_fleet_zone": "us-central1-a",
    "gcp_fleet_admin_cidrs": ["203.0.113.7/32"],
    "gcp_fleet_ssh_public_key": SSH_KEY,
}
FIRST_API_TASK = "TASK [gcp_fleet : Create the custom-mode VPC network]"


def extra(**overrides) -> str:
    return json.dumps({**VALID, **overrides})


@pytest.mark.parametrize("playbook", ["playbooks/provision-gcp.yml", "playbooks/teardown-gcp.yml"])
def test_syntax_check(offline, playbook):
    result = offline.run("ansible-playbook", playbook, "--syntax-check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_render_only_writes_specs_and_calls_nothing(offline):
    out = offline.tmp / "specs.json"
    result = offline.run(
        "ansible-playbook",
        "playbooks/provision-gcp.yml",
        "-e",
        extra(
            gcp_fleet_render_only=True,
            gcp_fleet_render_file=str(out),
            gcp_fleet_rabbitmq_count=3,
            gcp_fleet_worker_machine_type="t2a-standard-2",
        ),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    specs = json.loads(out.read_text())
    instances = {i["name"]: i for i in specs["instances"]}
    assert sorted(instances) == ["warren-rabbitmq-1", "warren-rabbitmq-2", "warren-rabbitmq-3", "warren-worker-1"]
    broker, worker = instances["warren-rabbitmq-1"], instances["warren-worker-1"]
    assert broker["machine_type"] == "c4a-standard-4"
    assert broker["disks"][0]["initialize_params"]["disk_type"] == "hyperdisk-balanced"
    assert worker["machine_type"] == "t2a-standard-2"
    assert worker["disks"][0]["initialize_params"]["disk_type"] == "pd-balanced"
    for instance in instances.values():
        assert instance["network_interfaces"][0]["nic_type"] == "GVNIC"
        assert (
            instance["disks"][0]["initialize_params"]["source_image"]
            == "projects/suse-cloud/global/images/family/sles-15-arm64"
        )
        assert instance["labels"]["warren-fleet"] == "warren"
    assert broker["labels"]["warren-role"] == "rabbitmq" and worker["labels"]["warren-role"] == "workers"
    rules = {r["name"]: r for r in specs["firewalls"]}
    assert rules["warren-allow-amqp"]["source_tags"] == ["warren-worker"]
    assert rules["warren-allow-management"]["source_ranges"] == ["203.0.113.7/32"]
    assert rules["warren-allow-cluster"]["source_tags"] == ["warren-rabbitmq"]
    assert FIRST_API_TASK not in result.stdout
    assert offline.requests() == []


def test_project_and_zone_come_from_the_environment(offline):
    out = offline.tmp / "specs.json"
    overrides = {k: v for k, v in VALID.items() if k not in ("gcp_fleet_project", "gcp_fleet_zone")}
    result = offline.run(
        "ansible-playbook",
        "playbooks/provision-gcp.yml",
        "-e",
        json.dumps({**overrides, "gcp_fleet_render_only": True, "gcp_fleet_render_file": str(out)}),
        env={"GCP_PROJECT": "env-proj", "GCP_ZONE": "asia-southeast1-c"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    specs = json.loads(out.read_text())
    assert (specs["project"], specs["zone"], specs["region"]) == ("env-proj", "asia-southeast1-c", "asia-southeast1")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"gcp_fleet_machine_type": "q7-standard-4"}, "belongs to the unknown machine family 'q7'"),
        (
            {"gcp_fleet_rabbitmq_machine_type": "n2-standard-4"},
            "gcp_fleet_rabbitmq_machine_type: n2-standard-4 is an x86_64 machine type but the selected image is arm64",
        ),
        ({"gcp_fleet_admin_cidrs": []}, "gcp_fleet_admin_cidrs is empty"),
        ({"gcp_fleet_admin_cidrs": ["0.0.0.0/0"]}, "set gcp_fleet_allow_world_admin: true"),
        ({"gcp_fleet_disk_type": "pd-ssd"}, "'pd-ssd' cannot be attached to c4a-standard-4"),
        ({"gcp_fleet_project": ""}, "gcp_fleet_project is empty"),
    ],
)
def test_bad_variables_stop_before_any_api_call(offline, overrides, message):
    # Not render-only: a valid run would go on to the google.cloud modules (see the next test).
    result = offline.run("ansible-playbook", "playbooks/provision-gcp.yml", "-e", extra(**overrides))
    assert result.returncode != 0
    assert "nothing was created" in result.stdout
    assert message in result.stdout, result.stdout
    assert FIRST_API_TASK not in result.stdout
    assert offline.requests() == []


def test_valid_variables_reach_the_api_with_the_rendered_spec(offline):
    """Control for the test above: the same run with valid variables does call Google (the fake), first to
    look the network up, then to create it from the spec; the fake refuses the create, so the run fails there."""
    result = offline.run("ansible-playbook", "playbooks/provision-gcp.yml", "-e", extra())
    assert result.returncode != 0
    assert FIRST_API_TASK in result.stdout
    calls = [r for r in offline.requests() if r.get("host") != "oauth2.googleapis.com"]
    assert not [r for r in offline.requests() if "blocked" in r], offline.requests()
    assert calls[0]["method"] == "GET"
    assert calls[0]["path"].endswith("/projects/demo-proj/global/networks/warren-net")
    assert calls[1]["method"] == "POST"
    assert calls[1]["path"].endswith("/projects/demo-proj/global/networks")
    assert calls[1]["body"]["name"] == "warren-net"
    assert calls[1]["body"]["autoCreateSubnetworks"] is False
    assert len(calls) == 2


def test_teardown_requires_confirmation(offline):
    result = offline.run("ansible-playbook", "playbooks/teardown-gcp.yml", "-e", extra())
    assert result.returncode != 0
    assert "confirm with -e gcp_fleet_teardown_confirm=warren" in result.stdout, result.stdout
    assert "nothing was deleted" in result.stdout
    assert offline.requests() == []


def test_confirmed_teardown_looks_the_fleet_up_by_label(offline):
    result = offline.run(
        "ansible-playbook", "playbooks/teardown-gcp.yml", "-e", extra(gcp_fleet_teardown_confirm="warren")
    )
    calls = [r for r in offline.requests() if r.get("host") != "oauth2.googleapis.com"]
    assert calls, result.stdout + result.stderr
    assert calls[0]["method"] == "GET"
    assert calls[0]["path"].endswith("/projects/demo-proj/zones/us-central1-a/instances")
    assert calls[0]["query"]["filter"] == "labels.warren-fleet = warren"
    assert not [r for r in offline.requests() if "blocked" in r]


def _provision(offline, state, **overrides):
    return offline.run(
        "ansible-playbook", "playbooks/provision-gcp.yml", "-e", extra(**overrides), env={"FAKEGCP_STATE": str(state)}
    )


def test_item3_with_iap_ssh_provisioning_completes_without_waiting_on_external_ips(offline):
    """The whole provisioning against a faked Compute Engine that keeps what it is given: with SSH through IAP the
    controller cannot reach the instances' external IPs, so it must not wait for them (before, it waited up to
    600 s per instance on an address only IAP may reach, then failed)."""
    state = offline.tmp / "compute"
    state.mkdir()
    result = _provision(offline, state, gcp_fleet_ssh_source="iap", gcp_fleet_worker_count=2)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p.name.rsplit("__", 1)[1] for p in state.glob("*__instances__*")) == [
        "warren-rabbitmq-1.json",
        "warren-worker-1.json",
        "warren-worker-2.json",
    ]
    # No connection was tried to any instance address (the fake records and blocks every one).
    assert [r for r in offline.requests() if "blocked" in r] == []
    assert "external 203.0.113.10" in result.stdout  # the fleet summary shows the addresses all the same


def test_item4_a_changed_ssh_key_on_existing_instances_stops_the_run_with_the_commands_that_apply_it(offline):
    state = offline.tmp / "compute"
    state.mkdir()
    # Internal IPs only: nothing to wait for on SSH (see the test above), the instances are created as asked.
    first = _provision(offline, state, gcp_fleet_external_ip=False)
    assert first.returncode == 0, first.stdout + first.stderr
    again = _provision(offline, state, gcp_fleet_external_ip=False)
    assert again.returncode == 0, again.stdout + again.stderr
    new_key = SSH_KEY.replace("FakeKeyForTestsOnly", "RotatedKeyForTests0")
    rotated = _provision(offline, state, gcp_fleet_external_ip=False, gcp_fleet_ssh_public_key=new_key)
    assert rotated.returncode != 0
    assert "gcp_fleet: 2 instance setting(s) the module cannot update, nothing was" in rotated.stdout, rotated.stdout
    assert (
        "gcloud compute instances add-metadata warren-rabbitmq-1 --zone us-central1-a "
        f"--metadata ssh-keys='warren-admin:{new_key}'" in rotated.stdout
    )
