"""The arm64 scenario's own checks: the kernel, the broker's Erlang and the workers' Python all run aarch64 code.

Everything else this scenario verifies is the default scenario's suite (molecule/default/tests), unchanged.
"""

from __future__ import annotations

import os
import struct
from typing import Any

import pytest

# e_machine of an ELF header (offset 18, 16 bits) for Arm64.
EM_AARCH64 = 183
WORKER_VENV = "/opt/warren/venv"


def elf_machine(host: Any, path: str) -> int:
    header = host.file(path).content[:20]
    assert header[:4] == b"\x7fELF", f"{path} is not an ELF file"
    byte_order = "<" if header[5] == 1 else ">"
    machine: int = struct.unpack(f"{byte_order}H", header[18:20])[0]
    return machine


def test_kernel_reports_aarch64(host: Any) -> None:
    assert host.run_expect([0], "uname -m").stdout.strip() == "aarch64"


def test_erlang_system_architecture_is_aarch64(host: Any) -> None:
    # Asked of the running broker node, not of a fresh `erl`.
    out = host.run_expect([0], "rabbitmqctl eval 'erlang:system_info(system_architecture).'").stdout
    assert out.strip().strip('"').startswith("aarch64-"), out


def test_worker_venv_python_is_aarch64(host: Any) -> None:
    out = host.run_expect(
        [0],
        f"{WORKER_VENV}/bin/python -c "
        "'import os, platform, sys; print(platform.machine()); print(os.path.realpath(sys.executable))'",
    ).stdout.split()
    machine, interpreter = out
    assert machine == "aarch64"
    assert elf_machine(host, interpreter) == EM_AARCH64


@pytest.mark.parametrize("instance", ["orders-1", "jobs-1", "whatsapp-1"])
def test_running_worker_executes_the_aarch64_interpreter(host: Any, instance: str) -> None:
    pid = host.run_expect([0], f"systemctl show warren-worker@{instance} -p MainPID --value").stdout.strip()
    assert pid not in ("", "0"), f"warren-worker@{instance} is not running"
    interpreter = host.run_expect([0], f"readlink -f {WORKER_VENV}/bin/python").stdout.strip()
    # The process maps the interpreter's file: that is the code it executes.
    mapped = {line.split()[-1] for line in host.file(f"/proc/{pid}/maps").content_string.splitlines()}
    assert interpreter in mapped, sorted(p for p in mapped if p.startswith("/"))
    assert elf_machine(host, interpreter) == EM_AARCH64


def test_worker_wheels_are_pure_python_or_aarch64(host: Any) -> None:
    # The controller builds the wheels; one with compiled parts must be built for the host's architecture.
    wheels = host.run_expect([0], "ls /opt/warren/wheels").stdout.split()
    assert any(w.startswith("warren-") for w in wheels), wheels
    for wheel in wheels:
        platform_tag = os.path.splitext(wheel)[0].split("-")[-1]
        assert platform_tag == "any" or "aarch64" in platform_tag, wheel
    shared_objects = host.run_expect([0], f"find {WORKER_VENV} -name '*.so*' -type f").stdout.split()
    for library in shared_objects:
        assert elf_machine(host, library) == EM_AARCH64, library
