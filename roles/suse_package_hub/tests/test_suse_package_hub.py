"""suse_package_hub on localhost with a fake os-release, SUSEConnect and zypper: which commands it runs,
for which distribution, and that a second run changes nothing. Real SUSE hosts: see docs/gcp.md."""

from __future__ import annotations

import platform
import stat
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "molecule" / "resources"))
from playbook_run import changed_count, run_ansible_playbook

PLAY = "roles/suse_package_hub/tests/play.yml"
ARCH = platform.machine()

FAKE_SUSECONNECT = """#!/bin/sh
# Fake SUSEConnect: state file = one registered product identifier per line. While the file "$FAKE_STATE.booting"
# holds a number above 0, --status counts it down and reports nothing registered (a PAYG first boot in progress).
echo "SUSEConnect $*" >> "$FAKE_CALLS"
case "$1" in
  --status)
    booting=$(cat "$FAKE_STATE.booting" 2>/dev/null || echo 0)
    if [ "$booting" -gt 0 ]; then
      echo $((booting - 1)) > "$FAKE_STATE.booting"
      printf '[{"identifier":"SLES","status":"Not Registered"}]\\n'; exit 0
    fi
    printf '['; sep=''
    while read -r id; do printf '%s{"identifier":"%s","version":"15.6","arch":"%s","status":"Registered"}' \
      "$sep" "$id" "$(uname -m)"; sep=','; done < "$FAKE_STATE"
    printf ']\\n' ;;
  -p) echo "${2%%/*}" >> "$FAKE_STATE"; echo "Activating ${2} ..." ;;
  -r) echo SLES >> "$FAKE_STATE" ;;
  *) exit 2 ;;
esac
"""
FAKE_ZYPPER = """#!/bin/sh
echo "zypper $*" >> "$FAKE_CALLS"
"""


class Host:
    def __init__(self, tmp: Path, os_id: str, registered: list[str], id_like: str = ""):
        self.tmp = tmp
        (tmp / "os-release").write_text(f'NAME="fake"\nID="{os_id}"\nID_LIKE="{id_like}"\nVERSION_ID="15.6"\n')
        self.state = tmp / "state"
        self.state.write_text("".join(f"{p}\n" for p in registered))
        self.calls = tmp / "calls"
        self.calls.write_text("")
        for name, text in (("SUSEConnect", FAKE_SUSECONNECT), ("zypper", FAKE_ZYPPER)):
            path = tmp / name
            path.write_text(text)
            path.chmod(path.stat().st_mode | stat.S_IEXEC)

    def run(self, **extra):
        variables = {
            "suse_package_hub_os_release": str(self.tmp / "os-release"),
            "suse_package_hub_suseconnect": str(self.tmp / "SUSEConnect"),
            "suse_package_hub_zypper": str(self.tmp / "zypper"),
            "suse_package_hub_python_interpreter": sys.executable,
            "suse_package_hub_registration_delay": 0,
            **extra,
        }
        env = {"FAKE_CALLS": str(self.calls), "FAKE_STATE": str(self.state)}
        result = run_ansible_playbook([PLAY], self.tmp, variables, env=env)
        calls = self.calls.read_text().splitlines()
        self.calls.write_text("")
        return result, calls


def test_syntax_check(tmp_path):
    result = run_ansible_playbook(["--syntax-check", PLAY], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_item6_sles_activates_the_server_applications_module_once_and_not_package_hub(tmp_path):
    host = Host(tmp_path, "sles", ["SLES", "sle-module-basesystem"])
    result, calls = host.run()
    assert result.returncode == 0, result.stdout + result.stderr
    # The registration check, then the products' status, then the one missing product.
    assert calls == [
        "SUSEConnect --status",
        "SUSEConnect --status",
        f"SUSEConnect -p sle-module-server-applications/15.6/{ARCH}",
    ]
    assert changed_count("localhost", result) == 1
    result, calls = host.run()
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls == ["SUSEConnect --status", "SUSEConnect --status"]
    assert changed_count("localhost", result) == 0


def test_sles_without_python311_gets_the_python_module_and_package_first(tmp_path):
    host = Host(tmp_path, "sles", ["SLES", "sle-module-server-applications"])
    result, calls = host.run(suse_package_hub_python_interpreter=str(tmp_path / "no-python3.11"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls == [
        "SUSEConnect --status",
        f"SUSEConnect -p sle-module-python3/15.6/{ARCH}",
        "zypper --non-interactive install --no-recommends python311",
        "SUSEConnect --status",
    ]


def test_payg_first_boot_registration_is_waited_for(tmp_path):
    host = Host(tmp_path, "sles", ["SLES", "sle-module-server-applications"])
    (tmp_path / "state.booting").write_text("3")
    result, calls = host.run()
    assert result.returncode == 0, result.stdout + result.stderr
    # Three answers "not registered", the fourth "registered", then the products' status.
    assert calls == ["SUSEConnect --status"] * 5
    assert not [c for c in calls if c.startswith("SUSEConnect -p")]


def test_a_system_that_never_registers_stops_with_a_clear_message_after_bounded_tries(tmp_path):
    host = Host(tmp_path, "sles", ["SLES"])
    (tmp_path / "state.booting").write_text("1000")
    result, calls = host.run(suse_package_hub_registration_retries=4)
    assert result.returncode != 0
    assert "lists no registered product after 4 tries 0 s apart" in result.stdout, result.stdout
    assert calls == ["SUSEConnect --status"] * 4


def test_byos_registration_only_when_unregistered(tmp_path):
    host = Host(tmp_path, "sles", [])
    result, calls = host.run(suse_package_hub_registration_code="FAKE-CODE")
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls[:2] == ["SUSEConnect --status", "SUSEConnect -r FAKE-CODE"]
    assert "FAKE-CODE" not in result.stdout  # no_log
    result, calls = host.run(suse_package_hub_registration_code="FAKE-CODE")
    assert "SUSEConnect -r FAKE-CODE" not in calls
    assert changed_count("localhost", result) == 0


def test_leap_needs_no_suseconnect(tmp_path):
    host = Host(tmp_path, "opensuse-leap", [])
    result, calls = host.run(suse_package_hub_registration_code="IGNORED")
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls == []
    assert changed_count("localhost", result) == 0


@pytest.mark.parametrize(("os_id", "id_like"), [("sle-micro", "suse"), ("opensuse-tumbleweed", "opensuse suse")])
def test_unknown_suse_distribution_is_refused(tmp_path, os_id, id_like):
    result, calls = Host(tmp_path, os_id, [], id_like=id_like).run()
    assert result.returncode != 0
    assert f"os-release ID {os_id} is not in suse_package_hub_distributions" in result.stdout
    assert calls == []


@pytest.mark.parametrize(("os_id", "id_like"), [("debian", ""), ("rhel", "fedora")])
def test_other_families_are_left_alone(tmp_path, os_id, id_like):
    # site.yml runs the role on every host: a Debian host must pass through untouched.
    result, calls = Host(tmp_path, os_id, [], id_like=id_like).run()
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls == []
    assert changed_count("localhost", result) == 0
