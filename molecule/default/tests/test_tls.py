"""TLS on the broker, seen from the controller as a client on the network would see it (the project's own
container only) and from inside the host: the deployment CA verifies AMQPS and HTTPS, a foreign CA does not,
TLS 1.0/1.1 and weak ciphers are refused, plain listeners are loopback-only, the workers consume over AMQPS,
the key is private to the broker, and the broker's unit is sandboxed."""

from __future__ import annotations

import base64
import datetime
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import admin_credentials
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "molecule" / "resources"))
from playbook_run import changed_count  # noqa: E402 - after the sys.path entry
from throwaway_container import run_playbook  # noqa: E402

# The deployment CA on the controller: the local inventory's secrets (inventory/local), or the gce scenario's
# throwaway ones in Molecule's ephemeral directory (molecule/gce/molecule.yml).
SECRETS = (
    Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "")) / "secrets"
    if os.environ.get("MOLECULE_SCENARIO_NAME") == "gce"
    else Path(os.environ.get("WARREN_SECRETS_DIR", REPO / ".secrets" / "local"))
)
CA_FILE = SECRETS / "tls" / "ca.crt"
TLS_PORTS = (5671, 15671, 15691)
PLAIN_PORTS = (5672, 15672, 15692)


@pytest.fixture(scope="module")
def name(host: Any) -> str:
    """The container's name: its inventory name, the name its certificate carries for clients."""
    return host.backend.get_hostname()


def container_address(name: str) -> str:
    """The container's address on Docker's network, as a client elsewhere on the network reaches it. The tests
    from the controller address only the project's own local container: elsewhere (the gce scenario) they skip."""
    out = subprocess.run(
        ["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", name],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    if out.returncode != 0 or not out.stdout.split():
        pytest.skip(f"{name} is not a local container: controller-side network tests skipped")
    return out.stdout.split()[0]


@pytest.fixture(scope="module")
def address(name: str) -> str:
    return container_address(name)


@pytest.fixture(scope="module")
def foreign_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("foreign-ca")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(tmp / "ca.key"), "-out", str(tmp / "ca.crt"), "-subj", "/CN=Foreign CA", "-days", "2"],
        capture_output=True,
        check=True,
        timeout=30,
    )  # fmt: skip
    return tmp / "ca.crt"


def s_client(address: str, port: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", "s_client", "-connect", f"{address}:{port}", *args],
        input="",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize("port", [5671, 15671])
def test_the_deployment_ca_verifies_the_broker_and_its_name(address: str, name: str, port: int) -> None:
    out = s_client(address, port, "-CAfile", str(CA_FILE), "-verify_return_error", "-verify_hostname", name)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Verify return code: 0 (ok)" in out.stdout
    assert re.search(r"Protocol *: TLSv1\.[23]|New, TLSv1\.[23]", out.stdout), out.stdout


@pytest.mark.parametrize("port", [5671, 15671])
def test_a_foreign_ca_does_not_verify_the_broker(address: str, foreign_ca: Path, port: int) -> None:
    out = s_client(address, port, "-CAfile", str(foreign_ca), "-verify_return_error")
    assert out.returncode != 0
    assert "verify error" in out.stdout + out.stderr


@pytest.mark.parametrize("version", ["-tls1", "-tls1_1"])
@pytest.mark.parametrize("port", [5671, 15671])
def test_tls_below_1_2_is_refused_by_the_broker(address: str, port: int, version: str) -> None:
    # SECLEVEL=0 lets this client offer the old protocol: the refusal must be the broker's alert.
    out = s_client(address, port, version, "-cipher", "DEFAULT:@SECLEVEL=0")
    assert out.returncode != 0
    assert "alert protocol version" in out.stdout + out.stderr, out.stdout + out.stderr


# CBC ciphers the broker's ECDSA key could otherwise use.
@pytest.mark.parametrize("cipher", ["ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384"])
def test_weak_tls_1_2_ciphers_are_refused(address: str, cipher: str) -> None:
    out = s_client(address, 5671, "-tls1_2", "-cipher", f"{cipher}:@SECLEVEL=0")
    assert out.returncode != 0
    assert "Cipher is (NONE)" in out.stdout, out.stdout


@pytest.mark.parametrize("port", PLAIN_PORTS)
def test_plain_listeners_are_unreachable_from_outside_the_host(host: Any, address: str, port: int) -> None:
    assert host.socket(f"tcp://127.0.0.1:{port}").is_listening
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((address, port), timeout=5).close()


@pytest.mark.parametrize("port", TLS_PORTS)
def test_tls_listeners_listen_on_every_address(host: Any, port: int) -> None:
    assert host.socket(f"tcp://0.0.0.0:{port}").is_listening


def _https(url: str, user: str = "", password: str = "") -> str:
    """GET over HTTPS trusting the deployment CA only (the broker's name is checked: its address is a SAN)."""
    request = urllib.request.Request(url)
    if user:
        request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    context = ssl.create_default_context(cafile=str(CA_FILE))
    with urllib.request.urlopen(request, context=context, timeout=15) as response:
        return str(response.read().decode())


def test_management_api_over_https_from_the_network(host: Any, address: str) -> None:
    user, password = admin_credentials(host)
    overview = json.loads(_https(f"https://{address}:15671/api/overview", user, password))
    assert "rabbitmq_version" in overview


def test_prometheus_metrics_over_https_from_the_network(address: str) -> None:
    assert "rabbitmq_build_info" in _https(f"https://{address}:15691/metrics")


def _workers_on_amqps(host: Any) -> tuple[bool, list[str]]:
    """Whether every worker instance has one connection to the broker and all of them are TLS 1.2+, and the
    broker's connection list."""
    rows = host.run_expect(
        [0], "rabbitmqctl list_connections -q --no-table-headers ssl ssl_protocol client_properties"
    ).stdout.splitlines()
    workers = [row.split("\t") for row in rows if '"warren-worker"' in row]
    expected = int(host.run_expect([0], "systemctl list-units --no-legend 'warren-worker@*' | wc -l").stdout)
    tls = all(ssl_on == "true" and protocol in ("tlsv1.2", "tlsv1.3") for ssl_on, protocol, _ in workers)
    return expected > 0 and len(workers) == expected and tls, rows


def test_every_worker_consumes_over_amqps(host: Any) -> None:
    on_amqps, rows = _workers_on_amqps(host)
    assert on_amqps, rows


def test_workers_trust_the_deployment_ca(host: Any) -> None:
    assert host.file("/etc/warren/ca.pem").content_string.strip() == CA_FILE.read_text().strip()
    assert 'ca_file = "/etc/warren/ca.pem"' in host.file("/etc/warren/jobs.toml").content_string


def test_the_broker_key_is_private_to_the_broker(host: Any) -> None:
    key = host.file("/etc/rabbitmq/tls/key.pem")
    assert (key.user, key.group, key.mode) == ("rabbitmq", "rabbitmq", 0o600)


def test_the_broker_unit_is_sandboxed(host: Any) -> None:
    out = host.run_expect([0], "systemd-analyze security rabbitmq-server.service").stdout
    score = float(re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out).group(1))
    assert score <= 5.0, out
    assert host.service("rabbitmq-server").is_running


# ---- certificates brought by the user that the role must refuse before the broker sees them ----------------


def _signed_by_the_deployment_ca(names: list[str], days: tuple[int, int]) -> tuple[str, ec.EllipticCurvePrivateKey]:
    ca_cert = x509.load_pem_x509_certificate(CA_FILE.read_bytes())
    ca_key = serialization.load_pem_private_key((CA_FILE.parent / "ca.key").read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + datetime.timedelta(days=days[0]))
        .not_valid_after(now + datetime.timedelta(days=days[1]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key


def _pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("names-miss-the-host", "miss DNS:{name}, the address clients use for this broker"),
        ("expired", "it is not valid now"),
        ("key-of-another-certificate", "it does not match its key (rabbitmq_tls_key)"),
    ],
)
def test_a_bad_brought_certificate_is_refused_and_the_broker_keeps_its_own(
    host: Any, name: str, address: str, tmp_path: Path, case: str, message: str
) -> None:
    if case == "names-miss-the-host":
        cert, key = _signed_by_the_deployment_ca(["elsewhere.example"], (-1, 30))
    elif case == "expired":
        cert, key = _signed_by_the_deployment_ca([name], (-30, -1))
    else:
        cert, _ = _signed_by_the_deployment_ca([name], (-1, 30))
        key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "broker.crt").write_text(cert)
    before = host.file("/etc/rabbitmq/tls/cert.pem").sha256sum
    pid = host.run_expect([0], "systemctl show rabbitmq-server -p MainPID --value").stdout.strip()

    result = run_playbook(
        name,
        "roles/rabbitmq/tests/tls_certificate.yml",
        tmp_path,
        {
            "rabbitmq_tls_ca_generate": False,
            "rabbitmq_tls_ca_cert_file": str(CA_FILE),
            "rabbitmq_tls_cert_file": str(tmp_path / "broker.crt"),
            "rabbitmq_tls_key": _pem(key),
        },
        timeout=300,
    )

    assert result.returncode != 0, result.stdout[-3000:]
    assert f"certificate {tmp_path / 'broker.crt'} refused, the broker keeps its current one" in result.stdout
    assert message.format(name=name) in result.stdout, result.stdout[-3000:]
    assert "PRIVATE KEY" not in result.stdout + result.stderr, "the brought key must never be logged"
    assert host.file("/etc/rabbitmq/tls/cert.pem").sha256sum == before
    assert host.run_expect([0], "systemctl show rabbitmq-server -p MainPID --value").stdout.strip() == pid
    out = s_client(address, 5671, "-CAfile", str(CA_FILE), "-verify_return_error", "-verify_hostname", name)
    assert out.returncode == 0, out.stdout + out.stderr


# ---- renewal of the certificate the role signs -------------------------------------------------------------


def _served_certificate(address: str, name: str) -> x509.Certificate:
    """The certificate the broker serves on AMQPS, verified with the deployment CA and the broker's name."""
    out = s_client(address, 5671, "-CAfile", str(CA_FILE), "-verify_return_error", "-verify_hostname", name)
    assert out.returncode == 0, out.stdout + out.stderr
    return x509.load_pem_x509_certificate(re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----",
                                                    out.stdout, re.S).group(0).encode())  # fmt: skip


def _broker_pid(host: Any) -> str:
    return str(host.run_expect([0], "systemctl show rabbitmq-server -p MainPID --value").stdout.strip())


def _worker_pids(host: Any) -> dict[str, str]:
    units = host.run_expect([0], "systemctl list-units --no-legend --plain 'warren-worker@*.service'").stdout
    return {unit: host.run_expect([0], f"systemctl show {unit} -p MainPID --value").stdout.strip()
            for unit in (line.split()[0] for line in units.splitlines())}  # fmt: skip


def _renew(name: str, tmp_path: Path, variables: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """The role's certificate tasks and the service tasks after them, with the deployment's PKI directory."""
    tmp_path.mkdir()
    result = run_playbook(
        name,
        "roles/rabbitmq/tests/tls_certificate.yml",
        tmp_path,
        {"rabbitmq_tls_pki_dir": str(CA_FILE.parent), **variables},
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    return result


def test_a_certificate_within_its_renewal_margin_is_re_signed_served_and_then_kept(
    host: Any, name: str, address: str, tmp_path: Path
) -> None:
    """Within `rabbitmq_tls_renew_before_days` of its expiry a run signs a new certificate, the restart handler
    makes the broker serve it and the workers reconnect over TLS; the next run, far from the new expiry, changes
    nothing. (The deployment's own margin leaving a fresh certificate alone is Molecule's idempotence step.)"""
    controller_cert = CA_FILE.parent / f"{name}.crt"
    original = x509.load_pem_x509_certificate(controller_cert.read_bytes())
    assert _served_certificate(address, name).serial_number == original.serial_number
    pid = _broker_pid(host)
    workers = _worker_pids(host)

    # A margin beyond the remaining validity (whatever earlier runs left), and a validity beyond the margin as
    # the role's checks want it.
    now = datetime.datetime.now(datetime.UTC)
    margin = (original.not_valid_after_utc - now).days + 1
    within = {"rabbitmq_tls_renew_before_days": margin, "rabbitmq_tls_cert_valid_days": margin + 1}
    renewed = _renew(name, tmp_path / "renewed", within)
    assert changed_count(name, renewed) > 0
    new = x509.load_pem_x509_certificate(controller_cert.read_bytes())
    assert new.serial_number != original.serial_number
    assert new.public_key() == original.public_key(), "a renewal keeps the broker's key"
    assert abs(new.not_valid_before_utc - now) < datetime.timedelta(minutes=5)
    validity = new.not_valid_after_utc - new.not_valid_before_utc
    assert abs(validity - datetime.timedelta(days=margin + 1)) < datetime.timedelta(minutes=1), validity
    assert host.file("/etc/rabbitmq/tls/cert.pem").content_string.strip() == controller_cert.read_text().strip()
    assert _broker_pid(host) != pid, "the restart handler did not run"
    assert _served_certificate(address, name).serial_number == new.serial_number
    _workers_consume_over_amqps_again(host, workers)

    # The same margin against the new certificate's longer validity: nothing changes, nothing restarts.
    pid = _broker_pid(host)
    kept = _renew(name, tmp_path / "kept", within)
    assert changed_count(name, kept) == 0, kept.stdout[-3000:]
    assert x509.load_pem_x509_certificate(controller_cert.read_bytes()).serial_number == new.serial_number
    assert _served_certificate(address, name).serial_number == new.serial_number
    assert _broker_pid(host) == pid


def _workers_consume_over_amqps_again(host: Any, workers: dict[str, str]) -> None:
    """After a broker restart the same worker processes reconnect over TLS and a job published now is handled."""
    deadline = time.monotonic() + 60
    while not (on_amqps := _workers_on_amqps(host))[0]:
        assert time.monotonic() < deadline, f"workers not back on AMQPS within 60 s: {on_amqps[1]}"
        time.sleep(0.5)
    assert _worker_pids(host) == workers, "a worker restarted instead of reconnecting"
    job = f"renewal-{uuid.uuid4().hex[:8]}"
    since = host.run_expect([0], "date +%s.%N").stdout.strip()
    host.run_expect([0], "rabbitmqadmin publish exchange=amq.default routing_key=jobs payload=%s",
                    json.dumps({"job": job}))  # fmt: skip
    deadline = time.monotonic() + 30
    while job not in host.run_expect([0], f"journalctl -u 'warren-worker@jobs-*' --since @{since} -o cat").stdout:
        assert time.monotonic() < deadline, f"job {job} not handled within 30 s"
        time.sleep(0.5)
