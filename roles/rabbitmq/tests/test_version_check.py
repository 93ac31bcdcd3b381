"""Real ansible-playbook runs of the role's version check (tasks/version.yml) on localhost, against a stand-in
rabbitmqctl that reports a given version: an older broker stops the play before any configuration is written,
with the version found and the one needed."""

import sys
from pathlib import Path

import pytest

# The run and the reading of its failure are shared by the role tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "molecule" / "resources"))
from role_validation import failure_lines, run_role_validation


def run_version_check(tmp_path, monkeypatch, installed):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    rabbitmqctl = bin_dir / "rabbitmqctl"
    # `rabbitmqctl version` prints the CLI's version without contacting a node; nothing else is asked of it.
    rabbitmqctl.write_text(f'#!/bin/sh\n[ "$1" = version ] && echo {installed}\n')
    rabbitmqctl.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin")
    return run_role_validation("rabbitmq", tmp_path, {}, tasks="version")


def test_a_broker_older_than_3_10_is_refused_with_both_versions(tmp_path, monkeypatch):
    assert failure_lines(run_version_check(tmp_path, monkeypatch, "3.9.29")) == [
        "RabbitMQ 3.9.29 is installed; Warren's broker configuration needs 3.10.0 or later (install a newer "
        "package or use rabbitmq_install_method=upstream_rpm)"
    ]


@pytest.mark.parametrize("installed", ["3.10.8", "3.13.7", "4.0.5"])
def test_supported_brokers_pass(tmp_path, monkeypatch, installed):
    result = run_version_check(tmp_path, monkeypatch, installed)
    assert result.returncode == 0, result.stdout + result.stderr
