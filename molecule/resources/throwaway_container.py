"""Throwaway containers of the project's local image for the role tests that need a real host.

Shared by the role tests (each adds this directory to sys.path). Every container is named with the given prefix and
a random suffix, and removed when the `with` block ends, whatever happened inside it.
"""

import contextlib
import subprocess
import uuid
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parents[2]
IMAGE = "warren/debian12-systemd:latest"
# What systemd needs in a container where --privileged fails (the same flags as molecule/default/molecule.yml).
SYSTEMD_FLAGS = [
    "--cap-add=SYS_ADMIN",
    "--cap-add=NET_ADMIN",
    "--security-opt=seccomp=unconfined",
    "--security-opt=apparmor=unconfined",
    "--cgroupns=host",
    "--volume=/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs=/run",
    "--tmpfs=/run/lock",
    "--tmpfs=/tmp",
]


def ensure_image():
    """Build the local image unless it exists (`make image`: CI runs the unit tests before Molecule builds it)."""
    if subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True, check=False).returncode != 0:
        subprocess.run(["make", "-s", "image"], cwd=REPO_DIR, check=True)


def docker_exec(name, script, check=True):
    """Run a shell script in the container as root; returns the completed process."""
    result = subprocess.run(
        ["docker", "exec", name, "sh", "-c", script], capture_output=True, text=True, timeout=300, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"in {name}: {script}\n{result.stdout}{result.stderr}")
    return result


@contextlib.contextmanager
def throwaway_container(prefix, systemd=False, hostname=None):
    """A running container of IMAGE named <prefix>-<random>; with systemd=True systemd is PID 1."""
    ensure_image()
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    command = ["docker", "run", "--detach", "--name", name, "--hostname", hostname or name]
    command += [*SYSTEMD_FLAGS, IMAGE] if systemd else [IMAGE, "sleep", "infinity"]
    subprocess.run(command, capture_output=True, check=True, timeout=120)
    try:
        if systemd:
            # Bounded: systemd reaches a state (running or degraded) in seconds.
            docker_exec(
                name,
                "for i in $(seq 60); do systemctl is-system-running --wait >/dev/null 2>&1 && exit 0; "
                's=$(systemctl is-system-running); [ "$s" = degraded ] && exit 0; sleep 1; done; exit 1',
            )
        yield name
    finally:
        subprocess.run(["docker", "rm", "--force", name], capture_output=True, check=False, timeout=120)
