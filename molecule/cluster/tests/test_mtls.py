"""Mutual TLS (the scenario's inventory sets warren_tls_verify_peer): the workers connect with the client
certificate the role signed for their host, and a broker refuses AMQPS clients without a certificate from the
deployment CA. The handshakes go from the first node to the second: traffic stays between the scenario's
containers, and every wait is bounded."""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import NODES, run_json

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "resources"))
from certificates import cert_pem, issue, key_pem

WORKER_PYTHON = "/opt/warren/venv/bin/python"
CLIENT_CERT, CLIENT_KEY = "/etc/warren/client.crt", "/etc/warren/client.key"
WORKER_UNITS = 4  # orders-1, orders-2, jobs-1, whatsapp-1
# An AMQPS client as the worker's: verifies the broker with the deployment CA, presents the certificate it is given
# (if any), sends the AMQP 0-9-1 header and reads the broker's answer; prints `accepted` on connection.start, else
# `refused:` and why. A certificate it cannot load fails the script, never passes for a refusal.
HANDSHAKE = """
import socket, ssl, sys
broker, cert, key = sys.argv[1], sys.argv[2] or None, sys.argv[3] or None
context = ssl.create_default_context(cafile="/etc/warren/ca.pem")
if cert:
    context.load_cert_chain(cert, key)
try:
    with socket.create_connection((broker, 5671), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=broker) as tls:
            tls.sendall(b"AMQP\\x00\\x00\\x09\\x01")
            frame = tls.recv(7)
    print("accepted" if frame[:1] == b"\\x01" else f"refused: connection closed {frame!r}")
except (ssl.SSLError, OSError) as exc:
    print(f"refused: {exc}")
"""


def handshake(host: Any, cert: str = "", key: str = "") -> str:
    command = " ".join(shlex.quote(arg) for arg in (WORKER_PYTHON, "-c", HANDSHAKE, NODES[1], cert, key))
    outcome = str(host.run_expect([0], command).stdout.strip())
    print(f"\nAMQPS handshake with {NODES[1]} (certificate: {cert or 'none'}): {outcome}")
    return outcome


def refused_by_the_broker(outcome: str) -> bool:
    """The broker ended the handshake: with its TLS alert (bad certificate) or, under TLS 1.3, where it checks the
    client's certificate after the client has finished, often by closing before the alert is read (EOF). Not this
    side refusing the broker's certificate, which would say nothing about the broker."""
    return outcome.startswith("refused") and "certificate verify failed" not in outcome.lower()


def test_the_worker_hosts_certificate_is_the_workers_own(first: Any) -> None:
    for path in (CLIENT_CERT, CLIENT_KEY):
        file = first.file(path)
        assert (file.user, file.group, file.mode) == ("warren", "warren", 0o600), path
    for profile in ("orders", "jobs", "whatsapp"):
        config = first.file(f"/etc/warren/{profile}.toml").content_string
        assert f'cert_file = "{CLIENT_CERT}"' in config, profile
        assert f'key_file = "{CLIENT_KEY}"' in config, profile


def test_the_workers_connect_with_their_hosts_certificate(first: Any) -> None:
    # Every connection of the cluster; the workers may still be reconnecting after the fault tests.
    command = "rabbitmqctl list_connections --quiet user ssl peer_cert_subject peer_cert_issuer --formatter json"
    deadline = time.monotonic() + 60
    while True:
        workers = [c for c in run_json(first, command) if c["user"] == "warren"]
        if len(workers) >= WORKER_UNITS or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert len(workers) >= WORKER_UNITS, workers
    for connection in workers:
        assert connection["ssl"] is True, connection
        assert f"CN={NODES[0]}" in connection["peer_cert_subject"], connection
        assert "CN=Warren deployment CA" in connection["peer_cert_issuer"], connection


def test_the_brokers_accept_the_hosts_certificate(first: Any) -> None:
    # The control for the refusals below: the same client, with the certificate the role signed.
    assert handshake(first, CLIENT_CERT, CLIENT_KEY) == "accepted"


def test_a_client_without_a_certificate_is_refused(first: Any) -> None:
    assert refused_by_the_broker(handshake(first)), "a broker let an AMQPS client in without a certificate"


@pytest.fixture
def foreign_certificate(first: Any) -> Any:
    """A client certificate for the same name from another CA (named like the deployment's), on the first node."""
    key, cert = issue(NODES[0], issue("Warren deployment CA"))
    paths = "/tmp/warren-mtls-foreign.crt", "/tmp/warren-mtls-foreign.key"
    for path, pem in zip(paths, (cert_pem(cert), key_pem(key)), strict=True):
        first.run_expect([0], f"umask 077 && cat > {path} <<'EOF'\n{pem}EOF")
    yield paths
    first.run_expect([0], f"rm -f {' '.join(paths)}")


def test_a_certificate_from_a_foreign_ca_is_refused(first: Any, foreign_certificate: tuple[str, str]) -> None:
    assert refused_by_the_broker(handshake(first, *foreign_certificate)), "a broker let in a foreign CA's certificate"
