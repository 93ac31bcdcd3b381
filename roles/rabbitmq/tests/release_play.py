"""The role's checks (tasks/validate.yml) run for real on localhost as on a host of a given distribution release:
a stand-in module sets the release's facts, the play loads the OS family's data as tasks/main.yml does, then the
role's checks run and the package choice is written out. Shared by this directory's tests."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent

FAKE_FACTS_MODULE = """#!/usr/bin/python
from ansible.module_utils.basic import AnsibleModule
module = AnsibleModule(argument_spec={"facts": {"type": "dict", "required": True}})
module.exit_json(changed=False, ansible_facts=module.params["facts"])
"""

PLAY = """
- name: Choose the RabbitMQ packages for a release
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Pretend to be the release
      fake_facts:
        facts: "{{ release_facts }}"
    - name: Load the OS family's data as the role's main.yml does
      ansible.builtin.include_vars: "{{ repo }}/roles/rabbitmq/vars/{{ ansible_facts['os_family'] }}.yml"
    - name: Run the role's checks
      ansible.builtin.include_role:
        name: rabbitmq
        tasks_from: validate
        public: true
    - name: Keep the choice
      ansible.builtin.copy:
        content: "{{ __rabbitmq_packages | to_json }}"
        dest: "{{ out }}"
        mode: "0600"
"""


def run_as_release(tmp_path, distribution, version, os_family="Suse", **extra):
    (tmp_path / "library").mkdir()
    (tmp_path / "library" / "fake_facts.py").write_text(FAKE_FACTS_MODULE)
    (tmp_path / "play.yml").write_text(PLAY)
    out = tmp_path / "packages.json"
    variables = {
        "repo": str(REPO),
        "out": str(out),
        "ansible_python_interpreter": sys.executable,
        "release_facts": {"distribution": distribution, "distribution_version": version, "os_family": os_family},
        "rabbitmq_erlang_cookie": "A" * 40,
        "rabbitmq_admin_password": "p" * 16,
        **extra,
    }
    (tmp_path / "vars.json").write_text(json.dumps(variables))
    env = dict(
        os.environ,
        ANSIBLE_ROLES_PATH=str(REPO / "roles"),
        ANSIBLE_CALLBACK_RESULT_FORMAT="json",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"),
    )
    result = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", str(tmp_path / "play.yml"), "-e", f"@{tmp_path}/vars.json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return result, (json.loads(out.read_text()) if out.exists() else None)
