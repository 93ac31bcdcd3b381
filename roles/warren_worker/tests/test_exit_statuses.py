"""The unit's RestartPreventExitStatus= and the worker's exit statuses are one list."""

from pathlib import Path

import yaml
from warren.exits import EX_CERTIFICATE, EX_CONFIG, EX_NOPERM, OPERATOR_MUST_FIX

ROLE = Path(__file__).resolve().parents[1]


def test_the_unit_does_not_restart_on_the_statuses_the_worker_exits_with_for_an_operator():
    role_vars = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
    expected = [EX_CERTIFICATE, EX_NOPERM, EX_CONFIG]
    assert role_vars["__warren_worker_no_restart_exit_statuses"] == list(OPERATOR_MUST_FIX) == expected
    unit = (ROLE / "templates" / "warren-worker@.service.j2").read_text()
    assert "RestartPreventExitStatus={{ __warren_worker_no_restart_exit_statuses | join(' ') }}" in unit
