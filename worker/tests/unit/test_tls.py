"""TLS to the broker: a real TLS server on loopback with certificates made here (a CA, a foreign CA, an
expired certificate, one for another name); the client must verify against the given CA only, say which
problem it met, and warren-publish must exit 76 with a line that says it, never falling back to plain AMQP."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import VALID
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from warren.config import ConfigError, load_config
from warren.consumer import Worker
from warren.exits import EX_CERTIFICATE
from warren.metrics import Metrics
from warren.notify import Notifier
from warren.outgoing import CertificateRefused
from warren.publish_cli import publish_main
from warren.publisher import Publisher
from warren.tls import certificate_problem, client_context

NOW = datetime.datetime.now(datetime.UTC)


@dataclass
class Authority:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    path: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca(tmp: Path, label: str) -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(label))
        .issuer_name(_name(label))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=1))
        .not_valid_after(NOW + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = tmp / f"{label}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Authority(key, cert, path)


def make_server_cert(tmp: Path, ca: Authority, label: str, names: list[str], expired: bool = False) -> Path:
    """Certificate and key in one PEM file, for `SSLContext.load_cert_chain`."""
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.ip_address(n)) if n[0].isdigit() else x509.DNSName(n) for n in names
    ]
    start, end = (
        (NOW - datetime.timedelta(days=10), NOW - datetime.timedelta(days=1))
        if expired
        else (
            NOW - datetime.timedelta(days=1),
            NOW + datetime.timedelta(days=10),
        )
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(names[0]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    path = tmp / f"{label}.pem"
    path.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("pki")
    ca, foreign = make_ca(tmp, "deployment-ca"), make_ca(tmp, "foreign-ca")
    return {
        "ca": ca.path,
        "good": make_server_cert(tmp, ca, "good", ["localhost", "127.0.0.1"]),
        "expired": make_server_cert(tmp, ca, "expired", ["localhost", "127.0.0.1"], expired=True),
        "other-name": make_server_cert(tmp, ca, "other-name", ["broker.example"]),
        "foreign": make_server_cert(tmp, foreign, "foreign", ["localhost", "127.0.0.1"]),
    }


@contextlib.contextmanager
def tls_server(cert_chain: Path) -> Iterator[int]:
    """A TLS server on 127.0.0.1 that completes handshakes and closes; yields its port."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_chain)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(5)
            with contextlib.suppress(OSError), context.wrap_socket(conn, server_side=True):
                pass
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def handshake_error(port: int, ca_file: Path, host: str = "localhost") -> ssl.SSLError | None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        try:
            with client_context(str(ca_file)).wrap_socket(raw, server_hostname=host):
                return None
        except ssl.SSLError as exc:
            return exc


def test_a_certificate_signed_by_the_ca_for_the_name_verifies(pki: dict[str, Path]) -> None:
    with tls_server(pki["good"]) as port:
        assert handshake_error(port, pki["ca"]) is None
        assert handshake_error(port, pki["ca"], host="127.0.0.1") is None


@pytest.mark.parametrize(
    ("cert", "host", "expected"),
    [
        ("foreign", "localhost", "untrusted certificate"),
        ("good", "broker.example", "certificate name mismatch"),
        ("other-name", "localhost", "certificate name mismatch"),
        ("expired", "localhost", "certificate expired"),
    ],
)
def test_each_certificate_problem_is_refused_and_named(
    pki: dict[str, Path], cert: str, host: str, expected: str
) -> None:
    with tls_server(pki[cert]) as port:
        err = handshake_error(port, pki["ca"], host)
    assert err is not None
    problem = certificate_problem(err)
    assert problem is not None and problem.startswith(expected), problem


def test_the_system_cas_do_not_trust_the_deployment_ca(pki: dict[str, Path]) -> None:
    with (
        tls_server(pki["good"]) as port,
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        client_context(None).wrap_socket(raw, server_hostname="localhost")


def test_tls_below_1_2_is_never_offered() -> None:
    assert client_context(None).minimum_version >= ssl.TLSVersion.TLSv1_2


def test_other_errors_are_not_certificate_problems() -> None:
    assert certificate_problem(ConnectionRefusedError(111, "Connection refused")) is None
    assert certificate_problem(None) is None


def test_publisher_names_the_problem_through_pikas_wrappers(pki: dict[str, Path]) -> None:
    with tls_server(pki["expired"]) as port:
        publisher = Publisher(
            f"amqps://localhost:{port}",
            username="u",
            password="p",
            timeout=10,
            tls_context=client_context(str(pki["ca"])),
        )
        with pytest.raises(CertificateRefused, match="certificate expired"):
            publisher.connect()


PUBLISH = ("--routing-key", "order.created", '{"order_id": 1}')
REPLAY = ("--replay-dlq", "order.events.dlq")


@pytest.mark.parametrize(
    ("cert", "expected", "mode"),
    [
        ("foreign", "untrusted", PUBLISH),
        ("other-name", "certificate name mismatch", PUBLISH),
        ("expired", "certificate expired", REPLAY),
    ],
    ids=["publish, untrusted", "publish, name mismatch", "DLQ replay, expired"],
)
def test_warren_publish_exits_76_and_says_why(
    pki: dict[str, Path],
    cert: str,
    expected: str,
    mode: tuple[str, ...],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    (tmp_path / "password").write_text("p")
    with tls_server(pki[cert]) as port:
        status = publish_main(
            [
                "--url",
                f"amqps://localhost:{port}",
                "--ca-file",
                str(pki["ca"]),
                "--username",
                "u",
                "--password-file",
                str(tmp_path / "password"),
                *mode,
            ]
        )
    assert status == EX_CERTIFICATE
    assert f"TLS: {expected}" in capsys.readouterr().err


def test_warren_publish_refuses_an_unreadable_ca_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "password").write_text("p")
    status = publish_main(
        [
            "--url",
            "amqps://localhost:1",
            "--ca-file",
            str(tmp_path / "missing.pem"),
            "--username",
            "u",
            "--password-file",
            str(tmp_path / "password"),
            "--routing-key",
            "k",
            "{}",
        ]
    )
    assert status == 2
    assert "missing.pem" in capsys.readouterr().err


def test_a_worker_whose_every_endpoint_refuses_its_certificate_exits_76(
    pki: dict[str, Path], write: Any, creds: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    with tls_server(pki["foreign"]) as untrusted, tls_server(pki["expired"]) as expired:
        profile = VALID.replace(
            '["amqp://10.0.0.1:5672", "amqp://10.0.0.2"]',
            f'["amqps://localhost:{untrusted}", "amqps://localhost:{expired}"]\nca_file = "{pki["ca"]}"',
        )
        worker = Worker(load_config(write(profile), creds), Metrics("order.events"), Notifier({}))
        # Bounded: a worker that kept retrying would be stopped (status 0) after 20 s.
        guard = threading.Timer(20, worker.request_stop)
        guard.start()
        try:
            with caplog.at_level("ERROR", "warren.worker"):
                assert worker.run() == EX_CERTIFICATE
        finally:
            guard.cancel()
    lines = [r.getMessage() for r in caplog.records if r.name == "warren.worker"]
    assert len(lines) == 3, lines
    assert lines[0].startswith(f"TLS: broker amqps://localhost:{untrusted} refused: untrusted certificate")
    assert lines[1].startswith(f"TLS: broker amqps://localhost:{expired} refused: certificate expired")
    assert lines[2] == "TLS: the certificate of every broker endpoint was refused; exiting with status 76"


def test_an_unreadable_ca_file_is_a_configuration_error(
    write: Any, creds: dict[str, str], tmp_path: Path
) -> None:
    profile = VALID.replace(
        '["amqp://10.0.0.1:5672", "amqp://10.0.0.2"]',
        f'["amqps://mq"]\nca_file = "{tmp_path / "absent.pem"}"',
    )
    with pytest.raises(ConfigError, match=r"broker TLS files \(.*absent.pem\) unusable"):
        load_config(write(profile), creds)
