"""Real ansible-playbook runs of one role's checks (`tasks/validate.yml`) on localhost, for the role tests.

Shared by the role tests (each adds this directory to sys.path): the run and the reading of the failure message
are the same for every role; what is validated and expected stays with the role.
"""

import json
import sys
from pathlib import Path

from playbook_run import REPO_DIR, run_ansible_playbook

PLAYBOOK = Path(__file__).resolve().parent / "validate-role.yml"


def run_role_validation(role, tmp_path, extra_vars, tasks="validate", inventory="localhost,"):
    """Run `role`'s tasks/<tasks>.yml (its validation) with `extra_vars` (passed as a JSON file, so types
    survive). Modules run in this Python. `inventory` may name a file whose other hosts are never contacted (their
    variables are, e.g. the cluster peers')."""
    variables = {
        "validate_role": role,
        "validate_tasks": tasks,
        "validate_arguments": sorted(extra_vars),
        "ansible_python_interpreter": sys.executable,
        **extra_vars,
    }
    # One JSON object per result, so the failure message is read back exactly.
    env = {"ANSIBLE_ROLES_PATH": str(REPO_DIR / "roles"), "ANSIBLE_CALLBACK_RESULT_FORMAT": "json"}
    return run_ansible_playbook(["-i", inventory, PLAYBOOK], tmp_path, variables, env=env, timeout=120)


def failure_lines(result):
    """The failed task's message, line by line; fails the test when the play did not fail."""
    assert result.returncode != 0, result.stdout
    for line in result.stdout.splitlines():
        if line.startswith("fatal: [localhost]: FAILED! => "):
            return json.loads(line.split(" => ", 1)[1])["msg"].split("\n")
    raise AssertionError("no failed task in the output:\n" + result.stdout + result.stderr)
