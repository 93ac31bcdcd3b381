"""One way for the role tests to run ansible-playbook for real: the venv's binary, in the repository (so its
ansible.cfg applies), with the caller's ANSIBLE_* settings left out so a test sees only the settings it names,
and variables passed as a JSON file so their types survive.

Shared by the role tests (each adds this directory to sys.path).
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def ansible_playbook():
    # The venv's ansible-playbook when pytest runs from it without the venv on PATH.
    beside_python = VENV_BIN / "ansible-playbook"
    return str(beside_python) if beside_python.exists() else shutil.which("ansible-playbook")


def run_ansible_playbook(arguments, tmp_path, variables=None, env=None, timeout=300):
    """`ansible-playbook ARGUMENTS` (inventory, playbook, options) with `variables` as extra vars and `env` added
    to the environment; returns the completed process, whatever its exit status."""
    command = [ansible_playbook(), *map(str, arguments)]
    if variables is not None:
        vars_file = tmp_path / "vars.json"
        vars_file.write_text(json.dumps(variables), encoding="utf-8")
        command += ["-e", f"@{vars_file}"]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    environment.update(
        PATH=f"{VENV_BIN}{os.pathsep}{environment.get('PATH', '')}",
        ANSIBLE_CONFIG=str(REPO_DIR / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"),
        **(env or {}),
    )
    return subprocess.run(
        command, cwd=REPO_DIR, env=environment, capture_output=True, text=True, timeout=timeout, check=False
    )


def changed_count(host, result):
    """The `changed=` figure of `host` in a playbook's recap."""
    return int(re.search(rf"^{re.escape(host)}\s*:.*changed=(\d+)", result.stdout, re.M).group(1))
