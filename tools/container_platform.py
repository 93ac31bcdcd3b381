"""The `docker run` options of Warren's local systemd container, read from Molecule's project base config.

.config/molecule/config.yml describes the one container every local scenario runs; the demo, the converge
benchmark (tools/lib.sh) and the role tests' throwaway containers start the same one from this translation, so
the flags live in one place. A platform key it cannot translate is an error rather than a silent difference.
Run as a script, it prints the options one per line and the command last.
"""

from pathlib import Path

import yaml

BASE_CONFIG = Path(__file__).resolve().parents[1] / ".config" / "molecule" / "config.yml"
OPTIONS = {
    "capabilities": "--cap-add",
    "security_opts": "--security-opt",
    "cgroupns_mode": "--cgroupns",
    "volumes": "--volume",
    "tmpfs": "--tmpfs",
}
# Set per container by the callers, or meaningful to Molecule only.
PER_CONTAINER = {"name", "hostname", "image", "pre_build_image", "groups", "command"}


def systemd_container(config: Path = BASE_CONFIG) -> tuple[list[str], str]:
    """The `docker run` options and the command of the platform in `config`."""
    platform = yaml.safe_load(config.read_text(encoding="utf-8"))["platforms"][0]
    unknown = set(platform) - set(OPTIONS) - PER_CONTAINER
    if unknown:
        raise SystemExit(f"{config}: no docker run option for platform keys {sorted(unknown)} (container_platform.py)")
    options = []
    for key, option in OPTIONS.items():
        values = platform.get(key, [])
        options += [f"{option}={value}" for value in ([values] if isinstance(values, str) else values)]
    return options, platform["command"]


if __name__ == "__main__":
    run_options, command = systemd_container()
    print("\n".join([*run_options, command]))
