"""The worker profile's [broker] table: where to connect, as whom, with which timeouts and TLS files."""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from warren.connection import DEFAULT_HEARTBEAT
from warren.tls import client_context, read_tls_files
from warren.toml_reader import TomlReader

# RabbitMQ's own advice: heartbeats under 5 s give false positives; past an hour they detect nothing useful.
MIN_HEARTBEAT, MAX_HEARTBEAT = 5, 3600


@dataclass(frozen=True)
class BrokerConfig:
    endpoints: tuple[str, ...]
    vhost: str
    username: str
    password: str
    heartbeat: int
    connection_timeout: float
    # amqps:// endpoints: the CA that signed the broker's certificate (None: the system's CAs), and a client
    # certificate and key for a broker that asks for one (mutual TLS).
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    def tls_context(self) -> ssl.SSLContext:
        return client_context(self.ca_file, self.cert_file, self.key_file)


def _endpoint_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"broker.endpoints: {url!r} is not a valid URL ({exc})"
    if parts.scheme not in ("amqp", "amqps"):
        return f"broker.endpoints: {url!r} must start with amqp:// or amqps://"
    if not parts.hostname:
        return f"broker.endpoints: {url!r} has no host"
    if parts.username is not None or parts.password is not None:
        return f"broker.endpoints: {url!r} contains credentials; use broker.username and broker.password_file"
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return f"broker.endpoints: {url!r} must be scheme://host[:port] only; the vhost is broker.vhost"
    if port is not None and not 0 < port < 65536:
        return f"broker.endpoints: {url!r} has an invalid port"
    return None


def read_broker(r: TomlReader, environ: Mapping[str, str]) -> BrokerConfig | None:
    start = len(r.problems)
    endpoints = r.get("broker", "endpoints", list)
    if endpoints is not None:
        if not endpoints:
            r.problems.append("broker.endpoints must list at least one amqp:// URL")
        for url in endpoints:
            problem = (
                f"broker.endpoints entries must be strings, got {url!r}"
                if not isinstance(url, str)
                else _endpoint_problem(url)
            )
            if problem:
                r.problems.append(problem)
    vhost = r.get("broker", "vhost", str, "/")
    username = r.get("broker", "username", str)
    if username == "":
        r.problems.append("broker.username must not be empty")
    password = _password(r, environ)
    heartbeat = r.get("broker", "heartbeat", int, DEFAULT_HEARTBEAT)
    if heartbeat is not None and heartbeat != 0 and not MIN_HEARTBEAT <= heartbeat <= MAX_HEARTBEAT:
        r.problems.append(
            f"broker.heartbeat must be 0 (disabled) or between {MIN_HEARTBEAT} and {MAX_HEARTBEAT} seconds "
            f"(shorter ones drop healthy connections on a busy host), got {heartbeat}"
        )
    timeout = r.get("broker", "connection_timeout", (int, float), 10.0)
    if timeout is not None and timeout <= 0:
        r.problems.append("broker.connection_timeout must be > 0")
    tls_files = read_tls_files(r)
    if len(r.problems) != start or password is None:
        return None
    return BrokerConfig(tuple(endpoints), vhost, username, password, heartbeat, timeout, *tls_files)


def _password(r: TomlReader, environ: Mapping[str, str]) -> str | None:
    name = r.get("broker", "password_file", str)
    if name is None:
        return None
    if not name:
        r.problems.append("broker.password_file must not be empty")
        return None
    if os.path.isabs(name):
        path = name
    else:
        creds = environ.get("CREDENTIALS_DIRECTORY")
        if not creds:
            r.problems.append(
                f"broker.password_file {name!r} is relative but CREDENTIALS_DIRECTORY is not set "
                "(use systemd LoadCredential= or an absolute path)"
            )
            return None
        path = os.path.join(creds, name)
    try:
        password = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        r.problems.append(f"broker.password_file {path}: {exc.strerror or exc}")
        return None
    except UnicodeDecodeError:
        r.problems.append(f"broker.password_file {path}: not UTF-8")
        return None
    if not password:
        r.problems.append(f"broker.password_file {path} is empty")
        return None
    return password
