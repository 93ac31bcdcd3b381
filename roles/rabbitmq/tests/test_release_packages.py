"""Item 6 of issue 21: which packages the role installs for a given os-release. One throwaway container takes each
release's /etc/os-release in turn; Ansible gathers its facts from it as on a real host, and the role's OS data
(vars/<OsFamily>.yml), its choice (vars/main.yml) and its check (tasks/validate.yml) do the rest (release_play)."""

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "molecule" / "resources"))
from release_play import run_as_release
from throwaway_container import throwaway_container

SLES_15_6 = (
    'NAME="SLES"\nVERSION="15-SP6"\nVERSION_ID="15.6"\nPRETTY_NAME="SUSE Linux Enterprise Server 15 SP6"\n'
    'ID="sles"\nID_LIKE="suse"\nCPE_NAME="cpe:/o:suse:sles:15:sp6"\n'
)
SLES_15_5 = SLES_15_6.replace("SP6", "SP5").replace("sp6", "sp5").replace("15.6", "15.5")
LEAP_15_6 = (
    'NAME="openSUSE Leap"\nVERSION="15.6"\nID="opensuse-leap"\nID_LIKE="suse opensuse"\nVERSION_ID="15.6"\n'
    'PRETTY_NAME="openSUSE Leap 15.6"\nCPE_NAME="cpe:/o:opensuse:leap:15.6"\n'
)
SUSE_313 = ["erlang26", "rabbitmq-server313", "rabbitmq-server313-plugins"]


@pytest.fixture(scope="module")
def host():
    with throwaway_container("issue21-release") as name:
        yield name


def as_os_release(tmp_path, host, text, **extra):
    # Debian's /etc/os-release is a link to /usr/lib/os-release, and /etc/debian_version would win over both.
    subprocess.run(
        [
            "docker",
            "exec",
            "-i",
            host,
            "sh",
            "-c",
            "rm -f /etc/os-release /usr/lib/os-release /etc/debian_version; cat > /etc/os-release",
        ],
        input=text,
        text=True,
        check=True,
    )
    return run_as_release(tmp_path, container=host, **extra)


@pytest.mark.parametrize(("name", "os_release"), [("sles-15.6", SLES_15_6), ("leap-15.6", LEAP_15_6)])
def test_item6_sles_and_leap_15_6_get_rabbitmq_3_13_not_the_plain_3_8_package(tmp_path, host, name, os_release):
    result, packages = as_os_release(tmp_path / name, host, os_release)
    assert result.returncode == 0, result.stdout + result.stderr
    assert packages == SUSE_313


def test_item6_sles_15_5_is_refused_with_the_known_releases_and_the_ways_out(tmp_path, host):
    result, packages = as_os_release(tmp_path, host, SLES_15_5)
    assert result.returncode != 0
    assert packages is None
    assert "no packages with RabbitMQ 3.10.0 or later are known for SLES 15.5" in result.stdout
    assert "known: SLES 15.6, SLES_SAP 15.6, openSUSE Leap 15.6" in result.stdout
    assert "Set rabbitmq_packages" in result.stdout


def test_rabbitmq_packages_names_them_for_a_release_without_an_entry(tmp_path, host):
    result, packages = as_os_release(tmp_path, host, SLES_15_5, rabbitmq_packages=["rabbitmq-server313"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert packages == ["rabbitmq-server313"]


def test_sles_for_sap_facts_get_the_same_packages(tmp_path):
    # SLES for SAP's os-release is not at hand; Ansible names it SLES_SAP when it tells it apart.
    result, packages = run_as_release(tmp_path, "SLES_SAP", "15.6")
    assert result.returncode == 0, result.stdout + result.stderr
    assert packages == SUSE_313


def test_debian_takes_the_distribution_package_on_any_release(tmp_path):
    result, packages = run_as_release(tmp_path, "Debian", "12.8", os_family="Debian")
    assert result.returncode == 0, result.stdout + result.stderr
    assert packages == ["rabbitmq-server"]
