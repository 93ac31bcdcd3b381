"""Item 6 of issue 21: which packages the role installs for a given distribution release (see release_play)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from release_play import run_as_release as choose

SUSE_313 = ["erlang26", "rabbitmq-server313", "rabbitmq-server313-plugins"]


@pytest.mark.parametrize(
    ("distribution", "version"), [("SLES", "15.6"), ("SLES_SAP", "15.6"), ("openSUSE Leap", "15.6")]
)
def test_item6_sles_and_leap_15_6_get_rabbitmq_3_13_not_the_plain_3_8_package(tmp_path, distribution, version):
    result, packages = choose(tmp_path, distribution, version)
    assert result.returncode == 0, result.stdout + result.stderr
    assert packages == SUSE_313


def test_item6_sles_15_5_is_refused_with_the_known_releases_and_the_ways_out(tmp_path):
    result, packages = choose(tmp_path, "SLES", "15.5")
    assert result.returncode != 0
    assert packages is None
    assert "no packages with RabbitMQ 3.10.0 or later are known for SLES 15.5" in result.stdout
    assert "known: SLES 15.6, SLES_SAP 15.6, openSUSE Leap 15.6" in result.stdout
    assert "Set rabbitmq_packages" in result.stdout


def test_rabbitmq_packages_names_them_for_a_release_without_an_entry(tmp_path):
    result, packages = choose(tmp_path, "SLES", "15.7", rabbitmq_packages=["rabbitmq-server313"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert packages == ["rabbitmq-server313"]


def test_debian_takes_the_distribution_package_on_any_release(tmp_path):
    result, packages = choose(tmp_path, "Debian", "12.8", os_family="Debian")
    assert result.returncode == 0, result.stdout + result.stderr
    assert packages == ["rabbitmq-server"]
