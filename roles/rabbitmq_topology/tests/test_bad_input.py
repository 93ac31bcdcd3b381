"""Real ansible-playbook runs of the role's validation on localhost (no broker): every bad input of the issue
fails the play with a message naming the offending entry, all of them at once, and the defaults pass."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from topology_cases import (
    ALL_AT_ONCE_ERRORS,
    BAD_INPUTS,
    REPO_DIR,
    ROLE_DIR,
    bad_topology,
)

PLAYBOOK = ROLE_DIR / "tests" / "validate.yml"
HEADER = "Invalid topology (rabbitmq_topology_definitions, rabbitmq_topology_users): %d error(s)"


def ansible_playbook():
    # The venv's ansible-playbook when pytest runs from it without the venv on PATH.
    beside_python = Path(sys.executable).parent / "ansible-playbook"
    return str(beside_python) if beside_python.exists() else shutil.which("ansible-playbook")


def run_validation(tmp_path, extra_vars):
    vars_file = tmp_path / "vars.json"
    vars_file.write_text(json.dumps({"rabbitmq_admin_password": "test-only-admin", **extra_vars}), encoding="utf-8")
    env = dict(
        os.environ,
        ANSIBLE_ROLES_PATH=str(REPO_DIR / "roles"),
        # One JSON object per result, so the failure message is read back exactly.
        ANSIBLE_CALLBACK_RESULT_FORMAT="json",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"),
    )
    return subprocess.run(
        [ansible_playbook(), "-i", "localhost,", str(PLAYBOOK), "-e", "@" + str(vars_file)],
        cwd=REPO_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def failure_message(result):
    for line in result.stdout.splitlines():
        if line.startswith("fatal: [localhost]: FAILED! => "):
            return json.loads(line.split(" => ", 1)[1])["msg"].split("\n")
    raise AssertionError("no failed task in the output:\n" + result.stdout + result.stderr)


def assert_fails_with(result, expected_errors):
    assert result.returncode != 0, result.stdout
    assert failure_message(result) == [HEADER % len(expected_errors), *(f"- {error}" for error in expected_errors)]
    # Nothing after validation ran: the play stopped at the assert.
    assert "ok=1 " in result.stdout and "failed=1 " in result.stdout


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_each_bad_input_fails_the_play(tmp_path, name):
    topology, users = bad_topology(name)
    result = run_validation(
        tmp_path,
        {
            "rabbitmq_topology_definitions": topology,
            "rabbitmq_topology_users": users,
            "warren_amqp_password": "test-only-password",
        },
    )
    assert_fails_with(result, BAD_INPUTS[name][1])


def test_all_bad_inputs_are_reported_in_one_failure(tmp_path):
    topology, users = bad_topology(*BAD_INPUTS)
    result = run_validation(
        tmp_path,
        {
            "rabbitmq_topology_definitions": topology,
            "rabbitmq_topology_users": users,
            "warren_amqp_password": "test-only-password",
        },
    )
    assert_fails_with(result, ALL_AT_ONCE_ERRORS)


def test_missing_app_password_says_to_use_vault(tmp_path):
    result = run_validation(tmp_path, {})
    assert_fails_with(
        result,
        [
            (
                "users[0] (warren): password is empty or not a string: set it from Ansible Vault (the default user "
                "'warren' takes rabbitmq_topology_app_password, which defaults to warren_amqp_password)"
            )
        ],
    )


def test_defaults_pass(tmp_path):
    result = run_validation(tmp_path, {"warren_amqp_password": "test-only-password"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok=3 " in result.stdout and "failed=0 " in result.stdout


def test_missing_admin_password_is_named(tmp_path):
    result = run_validation(tmp_path, {"warren_amqp_password": "test-only-password", "rabbitmq_admin_password": ""})
    assert result.returncode != 0
    assert "rabbitmq_topology_admin_password set (it defaults to rabbitmq_admin_password" in failure_message(result)[0]
