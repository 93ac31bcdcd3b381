"""Real ansible-playbook runs of the role's client-certificate tasks (tasks/client_certificate.yml) on localhost,
the controller, with a throwaway CA: the certificate the role signs, its renewal, and brought certificates that
must be refused before anything reaches a host. No key may appear in the output."""

import stat
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "molecule" / "resources"))
from certificates import cert_pem, issue, key_pem
from role_validation import failure_lines, run_role_validation


@pytest.fixture
def pki(tmp_path):
    """A deployment CA as the rabbitmq role leaves it: ca.key and ca.crt in the PKI directory."""
    ca = issue("Warren deployment CA")
    directory = tmp_path / "pki"
    directory.mkdir()
    (directory / "ca.key").write_text(key_pem(ca[0]))
    (directory / "ca.crt").write_text(cert_pem(ca[1]))
    return directory, ca


def run_tasks(tmp_path, pki_dir, **extra_vars):
    settings = {"warren_worker_tls_pki_dir": str(pki_dir), "warren_worker_tls_ca_file": str(pki_dir / "ca.crt")}
    result = run_role_validation("warren_worker", tmp_path, {**settings, **extra_vars}, tasks="client_certificate")
    assert "PRIVATE KEY" not in result.stdout + result.stderr
    return result


def changed(result):
    recap = next(line for line in result.stdout.splitlines() if line.startswith("localhost") and "changed=" in line)
    return int(recap.split("changed=")[1].split()[0])


def test_the_role_signs_a_client_certificate_once_and_renews_it_within_the_margin(tmp_path, pki):
    directory, ca = pki
    first = run_tasks(tmp_path, directory)
    assert first.returncode == 0, first.stdout
    cert = x509.load_pem_x509_certificate((directory / "clients" / "localhost.crt").read_bytes())
    cert.verify_directly_issued_by(ca[1])
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "localhost"
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]
    assert stat.S_IMODE((directory / "clients" / "localhost.key").stat().st_mode) == 0o600

    again = run_tasks(tmp_path, directory)
    assert again.returncode == 0 and changed(again) == 0, again.stdout
    # Expiry within the margin: signed again.
    renewed = run_tasks(tmp_path, directory, warren_worker_tls_renew_before_days=366)
    assert renewed.returncode == 0 and changed(renewed) == 1, renewed.stdout
    assert x509.load_pem_x509_certificate((directory / "clients" / "localhost.crt").read_bytes()) != cert


def test_a_brought_ca_key_signs_without_appearing_in_the_output(tmp_path, pki):
    directory, ca = pki
    (directory / "ca.key").unlink()
    result = run_tasks(tmp_path, directory, warren_worker_tls_ca_key=key_pem(ca[0]))
    assert result.returncode == 0, result.stdout
    x509.load_pem_x509_certificate((directory / "clients" / "localhost.crt").read_bytes()).verify_directly_issued_by(
        ca[1]
    )


def test_a_brought_client_certificate_that_cannot_work_is_refused_with_every_reason(tmp_path, pki):
    # One run for all the reasons (each run costs seconds); the runs above pass, so no reason is named wrongly.
    directory, _ = pki
    foreign = issue("Warren deployment CA")  # the same name as the deployment's: only the signature tells
    cert = issue("w1", foreign, days=(-30, -1), usage=[ExtendedKeyUsageOID.SERVER_AUTH])[1]
    brought = tmp_path / "w1.crt"
    brought.write_text(cert_pem(cert))
    result = run_tasks(
        tmp_path, directory, warren_worker_tls_cert_file=str(brought), warren_worker_tls_key=key_pem(issue("w1")[0])
    )
    assert failure_lines(result) == [
        f"localhost: client certificate {brought} refused, the workers keep their current one: "
        "it does not match its key (warren_worker_tls_key); "
        f"it is not valid now (valid from {cert.not_valid_before_utc:%Y%m%d%H%M%SZ} "
        f"to {cert.not_valid_after_utc:%Y%m%d%H%M%SZ}); "
        f"it is not signed by the CA the brokers trust ({directory / 'ca.crt'}); "
        "its extended key usage (TLS Web Server Authentication) does not allow client authentication;"
    ]


def test_a_good_brought_client_certificate_passes(tmp_path, pki):
    directory, ca = pki
    key, cert = issue("w1", ca)
    brought = tmp_path / "w1.crt"
    brought.write_text(cert_pem(cert))
    result = run_tasks(
        tmp_path, directory, warren_worker_tls_cert_file=str(brought), warren_worker_tls_key=key_pem(key)
    )
    assert result.returncode == 0, result.stdout
    # Nothing signed: the brought one is used as it is.
    assert not (directory / "clients").exists()
