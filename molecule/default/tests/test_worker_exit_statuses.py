"""A worker whose profile only an operator can fix exits 77 or 78 and systemd leaves it failed, not restarting.

Each case runs a throwaway instance of the deployed unit template with a broken copy of the orders profile, so
the deployed instances are untouched; the instance's files and state are removed afterwards.
"""

from __future__ import annotations

from typing import Any

import pytest

# Broken profile name -> (sed expression applied to a copy of orders.toml, exit status the worker must give).
BROKEN_PROFILES = {
    "exit-test-refused": ('s/^username = .*/username = "warren-no-such-user"/', 77),  # the broker refuses it
    "exit-test-invalid": ("s/^prefetch = .*/prefetch = 0/", 78),  # invalid configuration
}


@pytest.mark.parametrize("profile", sorted(BROKEN_PROFILES))
def test_refused_or_invalid_profile_leaves_unit_failed_without_restarts(host: Any, profile: str) -> None:
    edit, status = BROKEN_PROFILES[profile]
    unit = f"warren-worker@{profile}-1.service"
    config, env = f"/etc/warren/{profile}.toml", f"/etc/warren/instances/{profile}-1.env"
    try:
        host.run_expect([0], f"cp -p /etc/warren/orders.toml {config} && sed -i '{edit}' {config}")
        assert host.file(config).content_string != host.file("/etc/warren/orders.toml").content_string
        host.run_expect([0], f"printf 'WARREN_PROFILE={profile}\\nWARREN_WORKER_ARGS=\\n' > {env}")
        # A Type=notify start returns once the worker has exited: a restart would be pending by then.
        assert host.run(f"systemctl start {unit}").rc != 0
        shown = host.run_expect(
            [0], f"systemctl show {unit} -p ActiveState -p SubState -p Result -p ExecMainStatus -p NRestarts"
        ).stdout
        assert dict(line.split("=", 1) for line in shown.splitlines()) == {
            "ActiveState": "failed",
            "SubState": "failed",
            "Result": "exit-code",
            "ExecMainStatus": str(status),
            "NRestarts": "0",
        }
    finally:
        host.run(f"systemctl stop {unit}; systemctl reset-failed {unit}; rm -f {config} {env}")
