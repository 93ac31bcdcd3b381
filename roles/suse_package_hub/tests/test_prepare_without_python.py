"""Item 5 of issue 21: playbooks/prepare.yml, under the project's ansible.cfg (Mitogen strategy), against a host
with no Python at all, as a fresh SLES or Leap host is for Ansible (no /usr/bin/python3.11).

The host is a throwaway container of the local Debian image made to look like SLES 15 SP6: its os-release says so,
every Python binary is moved out of reach, and fake SUSEConnect and zypper stand in for SUSE's; the fake zypper
"installs" python311 by moving Debian's python3.11 back to /usr/bin/python3.11, the path the GCP inventory names.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "molecule" / "resources"))
from throwaway_container import REPO_DIR, docker_exec, run_playbook, throwaway_container

SLES_OS_RELEASE = 'NAME="SLES"\nVERSION_ID="15.6"\nID="sles"\nID_LIKE="suse"\n'
# State: one registered product identifier per line in /var/lib/fake-suse/products.
FAKE_SUSECONNECT = r"""#!/bin/sh
echo "SUSEConnect $*" >> /var/lib/fake-suse/calls
case "$1" in
  --status)
    printf '['; sep=''
    while read -r id; do printf '%s{"identifier":"%s","status":"Registered"}' "$sep" "$id"; sep=','; done \
      < /var/lib/fake-suse/products
    printf ']\n' ;;
  -p) echo "${2%%/*}" >> /var/lib/fake-suse/products ;;
  *) exit 2 ;;
esac
"""
FAKE_ZYPPER = r"""#!/bin/sh
echo "zypper $*" >> /var/lib/fake-suse/calls
case "$*" in
  *" install "*python311*) mv /var/lib/fake-suse/python3.11 /usr/bin/python3.11 ;;
esac
"""


def make_python_less_sles(name: str) -> None:
    docker_exec(
        name,
        "set -e; mkdir -p /var/lib/fake-suse; echo SLES > /var/lib/fake-suse/products; : > /var/lib/fake-suse/calls;"
        " mv /usr/bin/python3.11 /var/lib/fake-suse/python3.11; rm -f /usr/bin/python3 /usr/bin/python",
    )
    for path, text, mode in (
        ("/etc/os-release", SLES_OS_RELEASE, "0644"),
        ("/usr/local/bin/SUSEConnect", FAKE_SUSECONNECT, "0755"),
        ("/usr/local/bin/zypper", FAKE_ZYPPER, "0755"),
    ):
        subprocess.run(
            ["docker", "exec", "-i", name, "sh", "-c", f"cat > {path} && chmod {mode} {path}"],
            input=text,
            text=True,
            check=True,
        )
    found = docker_exec(name, "ls /usr/bin/python* /usr/local/bin/python* 2>/dev/null", check=False)
    assert found.stdout.strip() == "", f"Python still in the container: {found.stdout}"


def test_item5_prepare_play_runs_without_python_under_the_project_strategy(tmp_path):
    with throwaway_container("issue21-nopython") as name:
        make_python_less_sles(name)
        # The project's strategy is configured, not overridden: ansible.cfg names mitogen_linear.
        assert "strategy = mitogen_linear" in (REPO_DIR / "ansible.cfg").read_text()
        result = run_playbook(name, "playbooks/prepare.yml", tmp_path, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        calls = docker_exec(name, "cat /var/lib/fake-suse/calls").stdout.splitlines()
        assert "zypper --non-interactive install --no-recommends python311" in calls
        assert docker_exec(name, "/usr/bin/python3.11 -c 'print(1)'").stdout.strip() == "1"
