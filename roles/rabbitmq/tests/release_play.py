"""The role's checks (tasks/validate.yml) run for real as on a host of a given distribution release, and the
package choice they lead to. Two ways to be that host: a throwaway container whose /etc/os-release is the release's
(Ansible's own fact gathering reads it), or localhost with the release's facts set by a stand-in module. The play
loads the OS family's data as tasks/main.yml does, runs the role's checks, and writes the choice out on the
controller. Shared by this directory's tests."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "molecule" / "resources"))
from playbook_run import REPO_DIR, run_ansible_playbook

FAKE_FACTS_MODULE = """#!/usr/bin/python
from ansible.module_utils.basic import AnsibleModule
module = AnsibleModule(argument_spec={"facts": {"type": "dict", "required": True}})
module.exit_json(changed=False, ansible_facts=module.params["facts"])
"""

PLAY = """
- name: Choose the RabbitMQ packages for a release
  hosts: all
  gather_facts: false
  tasks:
    - name: Pretend to be the release
      fake_facts:
        facts: "{{ release_facts }}"
      when: release_facts is defined
    - name: Read the release as Ansible always does
      ansible.builtin.setup:
        gather_subset: [min]
      when: release_facts is not defined
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
      delegate_to: localhost
"""


def run_as_release(tmp_path, distribution=None, version=None, os_family="Suse", container=None, **extra):
    """With container: that host, its os-release already written; else localhost with these facts."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "library").mkdir(exist_ok=True)
    (tmp_path / "library" / "fake_facts.py").write_text(FAKE_FACTS_MODULE)
    (tmp_path / "play.yml").write_text(PLAY)
    out = tmp_path / "packages.json"
    out.unlink(missing_ok=True)
    if container:
        host = {container: {"ansible_connection": "docker", "ansible_python_interpreter": "/usr/bin/python3"}}
    else:
        host = {"localhost": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}
        extra["release_facts"] = {"distribution": distribution, "distribution_version": version, "os_family": os_family}
    (tmp_path / "hosts.json").write_text(json.dumps({"all": {"hosts": host}}))
    variables = {
        "repo": str(REPO_DIR),
        "out": str(out),
        "rabbitmq_erlang_cookie": "A" * 40,
        "rabbitmq_admin_password": "p" * 16,
        # Only checked by the role's validation here: nothing is generated.
        "rabbitmq_tls_pki_dir": str(tmp_path / "tls"),
        **extra,
    }
    env = {"ANSIBLE_ROLES_PATH": str(REPO_DIR / "roles"), "ANSIBLE_CALLBACK_RESULT_FORMAT": "json"}
    result = run_ansible_playbook(
        ["-i", tmp_path / "hosts.json", tmp_path / "play.yml"], tmp_path, variables, env=env, timeout=120
    )
    return result, (json.loads(out.read_text()) if out.exists() else None)
