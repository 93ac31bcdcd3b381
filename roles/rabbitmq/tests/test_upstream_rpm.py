"""Item 9 of issue 21: the upstream-RPM path pins the learning path's versions and never hands zypper an RPM it
has not verified. Real ansible-playbook runs of the role's tasks on localhost: the RPMs are local files served
over file://, and `rpm` is a stand-in that answers --checksig as rpm does for a signed or an unsigned package."""

import hashlib
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "molecule" / "resources"))
from role_validation import run_role_validation

sys.path.insert(0, str(Path(__file__).resolve().parent))
from release_play import run_as_release

ROLE = Path(__file__).resolve().parents[1]
DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
# rpm 4.14 (SLES 15): "digests signatures OK" for a package signed by an imported key, "digests OK" (exit 0) for an
# unsigned one, "digests SIGNATURES NOT OK" (exit 1) for a key it does not know. The stand-in reads the verdict
# from the file's first line.
FAKE_RPM = """#!/bin/sh
echo "rpm $*" >> "$(dirname "$0")/calls"
[ "$1" = --checksig ] || exit 2
verdict=$(head -n 1 "$2")
echo "$2: $verdict"
case "$verdict" in *"NOT OK"*) exit 1 ;; esac
"""


def test_item9_defaults_pin_the_learning_paths_rpms_and_the_release_signing_key():
    assert DEFAULTS["rabbitmq_upstream_erlang_rpm_url"].endswith("/v26.2.5/erlang-26.2.5-1.el8.aarch64.rpm")
    assert DEFAULTS["rabbitmq_upstream_server_rpm_url"].endswith("/v4.2.0/rabbitmq-server-4.2.0-1.el8.noarch.rpm")
    assert DEFAULTS["rabbitmq_upstream_signing_key_url"].endswith("/rabbitmq-release-signing-key.asc")


def test_item9_the_upstream_method_validates_with_its_defaults(tmp_path):
    result, _ = run_as_release(tmp_path, "SLES", "15.6", rabbitmq_install_method="upstream_rpm")
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_rpm_without_checksum_needs_the_signing_key(tmp_path):
    result, _ = run_as_release(
        tmp_path, "SLES", "15.6", rabbitmq_install_method="upstream_rpm", rabbitmq_upstream_signing_key_url=""
    )
    assert result.returncode != 0
    assert "nothing is installed unverified" in result.stdout, result.stdout


class Rpms:
    """Two local RPM stand-ins, a fake rpm on PATH, and the fetch-and-verify tasks run against them."""

    def __init__(self, tmp_path, monkeypatch, erlang_verdict, server_verdict):
        self.tmp = tmp_path
        self.files = {}
        for name, verdict in (
            ("erlang-26.2.5-1.el8.aarch64.rpm", erlang_verdict),
            ("server.noarch.rpm", server_verdict),
        ):
            path = tmp_path / "upstream" / name
            path.parent.mkdir(exist_ok=True)
            path.write_text(f"{verdict}\nrpm payload of {name}\n")
            self.files[name] = path
        (tmp_path / "downloads").mkdir()  # created by install_upstream_rpm.yml before it imports this file
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        (bin_dir / "rpm").write_text(FAKE_RPM)
        (bin_dir / "rpm").chmod(0o755)
        self.calls = bin_dir / "calls"
        monkeypatch.setenv("PATH", f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin")

    def sha256(self, name):
        return "sha256:" + hashlib.sha256(self.files[name].read_bytes()).hexdigest()

    def fetch(self, **checksums):
        erlang, server = self.files.values()
        return run_role_validation(
            "rabbitmq",
            self.tmp,
            {
                "rabbitmq_upstream_erlang_rpm_url": erlang.as_uri(),
                "rabbitmq_upstream_server_rpm_url": server.as_uri(),
                "rabbitmq_upstream_erlang_rpm_checksum": checksums.get("erlang", ""),
                "rabbitmq_upstream_server_rpm_checksum": checksums.get("server", ""),
                "__rabbitmq_download_dir": str(self.tmp / "downloads"),
            },
            tasks="upstream_rpm_fetch",
        )

    def rpm_calls(self):
        return self.calls.read_text().splitlines() if self.calls.exists() else []


def test_item9_an_unsigned_rpm_without_checksum_is_refused_before_installation(tmp_path, monkeypatch):
    rpms = Rpms(tmp_path, monkeypatch, "digests signatures OK", "digests OK")
    result = rpms.fetch()
    assert result.returncode != 0
    assert "rabbitmq: server.noarch.rpm is not signed by a key rpm trusts (" in result.stdout, result.stdout
    assert "digests OK); nothing was installed" in result.stdout


def test_an_rpm_signed_by_an_unknown_key_is_refused(tmp_path, monkeypatch):
    rpms = Rpms(tmp_path, monkeypatch, "digests SIGNATURES NOT OK", "digests signatures OK")
    result = rpms.fetch()
    assert result.returncode != 0
    assert "erlang-26.2.5-1.el8.aarch64.rpm is not signed by a key rpm trusts" in result.stdout, result.stdout


def test_signed_rpms_pass_their_signature_check(tmp_path, monkeypatch):
    rpms = Rpms(tmp_path, monkeypatch, "digests signatures OK", "digests signatures OK")
    result = rpms.fetch()
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(rpms.rpm_calls()) == 2


def test_rpms_with_a_matching_checksum_need_no_signature(tmp_path, monkeypatch):
    rpms = Rpms(tmp_path, monkeypatch, "digests OK", "digests OK")
    result = rpms.fetch(erlang=rpms.sha256("erlang-26.2.5-1.el8.aarch64.rpm"), server=rpms.sha256("server.noarch.rpm"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert rpms.rpm_calls() == []


def test_a_checksum_mismatch_stops_the_download(tmp_path, monkeypatch):
    rpms = Rpms(tmp_path, monkeypatch, "digests signatures OK", "digests signatures OK")
    result = rpms.fetch(erlang="sha256:" + "0" * 64)
    assert result.returncode != 0
    assert "checksum" in result.stdout.lower()
    assert not (tmp_path / "downloads" / "erlang-26.2.5-1.el8.aarch64.rpm").exists()
