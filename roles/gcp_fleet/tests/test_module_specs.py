"""Item 1 of issue 21: every google.cloud module call the role's task files make, rendered from the role's own
variables exactly as Ansible renders it, is checked against that module's own argument_spec, offline.

The spec is taken from the installed collection by running each module's main() up to AnsibleModule.__init__,
which receives what the module really validates with: GcpModule adds the auth options and (google.cloud 1.10.2)
loses the module's mutually_exclusive lists, so source_tags with target_tags passes, as the Compute API allows.
The calls are the task files' module arguments templated by Ansible's Templar with the role defaults, vars/main.yml,
the test's variables, each loop item and the block's module_defaults. A wrong type, a missing required sub-option
or an unknown key in any of them fails here instead of in a user's project."""

from __future__ import annotations

import copy
import functools
import importlib

import pytest
import yaml
from conftest import REPO, ROLE, SSH_KEY

TASK_FILES = ("network.yml", "firewall.yml", "instances.yml", "teardown.yml")
VALID = {
    "gcp_fleet_project": "demo-proj",
    "gcp_fleet_zone": "us-central1-a",
    "gcp_fleet_admin_cidrs": ["203.0.113.7/32"],
    "gcp_fleet_ssh_public_key": SSH_KEY,
    "gcp_fleet_rabbitmq_count": 3,
    "gcp_fleet_worker_count": 2,
    "gcp_fleet_worker_machine_type": "t2a-standard-2",
    "playbook_dir": str(REPO / "playbooks"),
    # What the teardown's lookup task registers: the instances the delete loop goes over.
    "__gcp_fleet_found": {"resources": [{"name": "warren-rabbitmq-1"}, {"name": "warren-worker-1"}]},
}


class _Captured(Exception):
    pass


@functools.cache
def module_kwargs(name: str) -> dict:
    """The keyword arguments the module passes to AnsibleModule (argument_spec, mutually_exclusive, ...)."""
    from ansible.module_utils import basic

    module = importlib.import_module(f"ansible_collections.google.cloud.plugins.modules.{name}")
    seen: dict = {}
    original = basic.AnsibleModule.__init__

    def capture(self, *args, **kwargs):
        seen.update(kwargs)
        raise _Captured

    basic.AnsibleModule.__init__ = capture
    try:
        module.main()
    except _Captured:
        pass
    finally:
        basic.AnsibleModule.__init__ = original
    assert "argument_spec" in seen, f"{name}: main() did not reach AnsibleModule"
    return seen


def module_errors(name: str, params: dict) -> list[str]:
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    kwargs = module_kwargs(name)
    validator = ArgumentSpecValidator(
        kwargs["argument_spec"],
        mutually_exclusive=kwargs.get("mutually_exclusive"),
        required_together=kwargs.get("required_together"),
        required_one_of=kwargs.get("required_one_of"),
        required_if=kwargs.get("required_if"),
        required_by=kwargs.get("required_by"),
    )
    return [str(error) for error in validator.validate(copy.deepcopy(params)).errors]


def _trusted(value):
    from ansible.template import trust_as_template

    if isinstance(value, dict):
        return {k: _trusted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_trusted(v) for v in value]
    return trust_as_template(value) if isinstance(value, str) else value


@functools.cache
def _templar_variables() -> dict:
    from ansible.plugins.loader import add_all_plugin_dirs, init_plugin_loader

    init_plugin_loader()
    add_all_plugin_dirs(str(ROLE))
    variables = {}
    for path in (ROLE / "defaults" / "main.yml", ROLE / "vars" / "main.yml"):
        variables.update(_trusted(yaml.safe_load(path.read_text())))
    variables.update(VALID)
    return variables


def _template(value, **extra):
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar

    return Templar(loader=DataLoader(), variables={**_templar_variables(), **extra}).template(_trusted(value))


def _tasks(tasks, defaults=None):
    """(task, module_defaults of its block) for every task, blocks unrolled."""
    for task in tasks:
        block_defaults = task.get("module_defaults", {}).get("group/google.cloud.gcp", defaults)
        if "block" in task:
            yield from _tasks(task["block"], block_defaults)
        else:
            yield task, block_defaults


def _main_module_defaults():
    [block] = [t for t in yaml.safe_load((ROLE / "tasks" / "main.yml").read_text()) if "block" in t]
    return block["module_defaults"]["group/google.cloud.gcp"]


def rendered_calls() -> list[tuple[str, str, dict]]:
    """(where, module, parameters) of every google.cloud call in the role's task files."""
    specs = _template("{{ __gcp_fleet_settings | gcp_fleet_specs }}")
    calls = []
    for file_name in TASK_FILES:
        tasks = yaml.safe_load((ROLE / "tasks" / file_name).read_text())
        # network, firewall and instances run inside main.yml's block; teardown.yml has its own.
        outer = None if file_name == "teardown.yml" else _main_module_defaults()
        for task, defaults in _tasks(tasks, outer):
            modules = [key for key in task if key.startswith("google.cloud.")]
            if not modules:
                continue
            [module] = modules
            items = _template(task["loop"], __gcp_fleet_specs=specs) if "loop" in task else [None]
            for item in items:
                params = _template(task[module], item=item, __gcp_fleet_specs=specs)
                params = {**_template(defaults or {}), **params}
                calls.append((f"{file_name}: {task['name']}", module.rsplit(".", 1)[1], params))
    return calls


def test_item1_every_rendered_module_call_passes_its_modules_own_argument_spec():
    calls = rendered_calls()
    assert {module for _, module, _ in calls} == {
        "gcp_compute_network",
        "gcp_compute_subnetwork",
        "gcp_compute_firewall",
        "gcp_compute_instance",
        "gcp_compute_instance_info",
    }
    # 3 brokers and 2 workers created, 2 instances deleted; 5 firewall rules created and 5 deleted.
    assert sum(1 for where, m, _ in calls if m == "gcp_compute_instance") == 5 + 2
    assert sum(1 for _, m, _ in calls if m == "gcp_compute_firewall") == 5 + 5
    problems = {f"{where} ({params.get('name')})": module_errors(m, params) for where, m, params in calls}
    assert {k: v for k, v in problems.items() if v} == {}
    for _, _, params in calls:
        assert params["project"] == "demo-proj" and params["auth_kind"] == "application"


def _first(module):
    return copy.deepcopy(next(p for _, m, p in rendered_calls() if m == module and p.get("state") == "present"))


def _break_firewall_key(params):
    params["allowed"][0]["protocol"] = params["allowed"][0].pop("ip_protocol")


def _break_disk_size(params):
    params["disks"][0]["initialize_params"]["disk_size_gb"] = "fifty"


def _drop_cidr(params):
    del params["ip_cidr_range"]


@pytest.mark.parametrize(
    ("module", "breaks", "message"),
    [
        ("gcp_compute_firewall", _break_firewall_key, "protocol"),
        ("gcp_compute_instance", _break_disk_size, "disk_size_gb"),
        ("gcp_compute_subnetwork", _drop_cidr, "ip_cidr_range"),
    ],
)
def test_the_check_catches_an_unknown_key_a_wrong_type_and_a_missing_required_option(module, breaks, message):
    params = _first(module)
    assert module_errors(module, params) == []
    breaks(params)
    errors = module_errors(module, params)
    assert errors and message in " ".join(errors), errors
