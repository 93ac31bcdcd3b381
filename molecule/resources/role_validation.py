"""Real ansible-playbook runs of one role's checks (`tasks/validate.yml`) on localhost, for the role tests.

Shared by the role tests (each adds this directory to sys.path): the run and the reading of the failure message
are the same for every role; what is validated and expected stays with the role.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parents[2]
PLAYBOOK = Path(__file__).resolve().parent / "validate-role.yml"


def ansible_playbook():
    # The venv's ansible-playbook when pytest runs from it without the venv on PATH.
    beside_python = Path(sys.executable).parent / "ansible-playbook"
    return str(beside_python) if beside_python.exists() else shutil.which("ansible-playbook")


def run_role_validation(role, tmp_path, extra_vars, tasks="validate", inventory="localhost,"):
    """Run `role`'s tasks/<tasks>.yml (its validation) with `extra_vars` (passed as a JSON file, so types
    survive). Modules run in this Python. `inventory` may name a file whose other hosts are never contacted (their
    variables are, e.g. the cluster peers')."""
    vars_file = tmp_path / "vars.json"
    vars_file.write_text(
        json.dumps(
            {
                "validate_role": role,
                "validate_tasks": tasks,
                "validate_arguments": sorted(extra_vars),
                "ansible_python_interpreter": sys.executable,
                **extra_vars,
            }
        ),
        encoding="utf-8",
    )
    env = dict(
        os.environ,
        ANSIBLE_ROLES_PATH=str(REPO_DIR / "roles"),
        # One JSON object per result, so the failure message is read back exactly.
        ANSIBLE_CALLBACK_RESULT_FORMAT="json",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"),
    )
    return subprocess.run(
        [ansible_playbook(), "-i", str(inventory), str(PLAYBOOK), "-e", "@" + str(vars_file)],
        cwd=REPO_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def failure_lines(result):
    """The failed task's message, line by line; fails the test when the play did not fail."""
    assert result.returncode != 0, result.stdout
    for line in result.stdout.splitlines():
        if line.startswith("fatal: [localhost]: FAILED! => "):
            return json.loads(line.split(" => ", 1)[1])["msg"].split("\n")
    raise AssertionError("no failed task in the output:\n" + result.stdout + result.stderr)
