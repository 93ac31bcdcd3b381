"""Real ansible-playbook runs of the role's validation on localhost (no broker): every bad input of the issue
fails the play with a message naming the offending entry, all of them at once, and the defaults pass."""

import sys

import pytest
from topology_cases import (
    ALL_AT_ONCE_ERRORS,
    BAD_INPUTS,
    REPO_DIR,
    bad_topology,
)

# The run and the reading of its failure are shared by the role tests.
sys.path.insert(0, str(REPO_DIR / "molecule" / "resources"))
from role_validation import failure_lines, run_role_validation

HEADER = "Invalid topology (rabbitmq_topology_definitions, rabbitmq_topology_users): %d error(s)"


def run_validation(tmp_path, extra_vars):
    # The administrator's password is required by the role; tests that are about it override it. Three nodes, so
    # that the quorum queues of the cases are about their own errors, not the cluster's size (test_cluster.py).
    return run_role_validation(
        "rabbitmq_topology",
        tmp_path,
        {"rabbitmq_admin_password": "test-only-admin", "rabbitmq_topology_cluster_size": 3, **extra_vars},
    )


def assert_fails_with(result, expected_errors):
    assert failure_lines(result) == [HEADER % len(expected_errors), *(f"- {error}" for error in expected_errors)]
    # Nothing after validation ran: the play stopped at the assert (after the argument spec check and its defaults).
    assert "ok=3 " in result.stdout and "failed=1 " in result.stdout


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
    assert "ok=5 " in result.stdout and "failed=0 " in result.stdout


def test_missing_admin_password_is_named(tmp_path):
    result = run_validation(tmp_path, {"warren_amqp_password": "test-only-password", "rabbitmq_admin_password": ""})
    assert "rabbitmq_topology_admin_password set (it defaults to rabbitmq_admin_password" in failure_lines(result)[0]
