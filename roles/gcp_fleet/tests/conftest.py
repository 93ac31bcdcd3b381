"""Shared helpers: run the controller's ansible commands from the repository root, offline.

Every subprocess gets PYTHONPATH=fakegcp (see fakegcp/sitecustomize.py): sockets to anything but loopback
raise and Google's HTTP endpoints are answered by fakes, so no test can reach Google, even by mistake.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROLE = Path(__file__).resolve().parents[1]
REPO = ROLE.parents[1]
FAKEGCP = Path(__file__).resolve().parent / "fakegcp"
BIN = Path(sys.executable).parent
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTestsOnlyFakeKeyForTestsOnly0000 test@warren"


def _tool(name: str) -> str:
    candidate = BIN / name
    return str(candidate) if candidate.exists() else name


class Offline:
    """Runs ansible-* commands with the network cut and Google faked; keeps the request log."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.log = tmp / "fakegcp.jsonl"
        self.instances = tmp / "instances.json"
        self.instances.write_text(json.dumps({"items": {}}))
        adc = tmp / "adc.json"
        adc.write_text(
            json.dumps(
                {
                    "type": "authorized_user",
                    "client_id": "fake.apps.googleusercontent.com",
                    "client_secret": "fake",
                    "refresh_token": "fake",
                }
            )
        )
        self.env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("GCP_", "GCE_", "GOOGLE_", "CLOUDSDK_", "WARREN_GCP_", "ANSIBLE_"))
        }
        self.env.update(
            {
                "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                "PYTHONPATH": str(FAKEGCP),
                "FAKEGCP_LOG": str(self.log),
                "FAKEGCP_INSTANCES": str(self.instances),
                "GOOGLE_APPLICATION_CREDENTIALS": str(adc),
                "ANSIBLE_LOCAL_TEMP": str(tmp / "ansible-tmp"),
                "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_FORCE_COLOR": "0",
            }
        )

    def run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [_tool(args[0]), *args[1:]],
            cwd=REPO,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def requests(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]


@pytest.fixture
def offline(tmp_path: Path) -> Offline:
    return Offline(tmp_path)


def unwrap(value):
    """ansible-inventory --list marks strings as {"__ansible_unsafe": ...}; drop the marks."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value
