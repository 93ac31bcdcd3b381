"""Pure helpers for the warren_worker role: unit instances, broker endpoints, profile validation, client
certificate checks.

Types are checked by meta/argument_specs.yml; these are the rules between values. The rules of a profile's
[consumer] table (queue, prefetch, concurrency) are the worker's own (warren.config.consumer_problems), read from
the worker's source on the controller, so the role and the worker cannot disagree."""

from __future__ import annotations

import importlib
import itertools
import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any

PROFILE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
HANDLER_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
# Metrics ports: instance n (1..10) of the profile at index p listens on base + 10*p + n.
METRICS_PORTS_PER_PROFILE = 10


def worker_instances(profiles: Iterable[Mapping[str, Any]], metrics_base_port: int = 0) -> list[dict[str, Any]]:
    """Every unit instance the profiles ask for: warren-worker@<profile>-<n>, with its metrics port."""
    instances = []
    for index, profile in enumerate(profiles):
        for n in range(1, int(profile["instances"]) + 1):
            instances.append(
                {
                    "profile": profile["name"],
                    "instance": f"{profile['name']}-{n}",
                    "metrics_port": (
                        metrics_base_port + METRICS_PORTS_PER_PROFILE * index + n if metrics_base_port else 0
                    ),
                }
            )
    return instances


def amqp_endpoints(
    brokers: Iterable[str], hostvars: Mapping[str, Any], this_host: str, port: int, scheme: str = "amqp"
) -> list[str]:
    """Broker URLs for a worker host: its own broker first when it is one, then the others. Plain AMQP reaches
    its own broker over loopback; amqps:// by the address its certificate names, as every other broker."""
    brokers = list(brokers)
    endpoints = [f"amqp://127.0.0.1:{port}"] if this_host in brokers and scheme == "amqp" else []
    own_first = sorted(brokers, key=lambda host: host != this_host)
    for host in own_first:
        if host == this_host and scheme == "amqp":
            continue
        host_vars = hostvars[host]
        address = host_vars.get("warren_amqp_address") or host_vars.get("ansible_host") or host
        endpoints.append(f"{scheme}://{address}:{port}")
    return endpoints


def profile_errors(profiles: Any, worker_source_dir: str) -> list[str]:
    """Every problem with warren_worker_profiles, each naming the offending profile."""
    if not isinstance(profiles, list):
        return ["warren_worker_profiles must be a list of profiles"]
    consumer_problems = _worker_config(worker_source_dir).consumer_problems
    errors: list[str] = []
    seen: set[str] = set()
    for i, profile in enumerate(profiles):
        where = f"warren_worker_profiles[{i}]"
        if not isinstance(profile, Mapping):
            errors.append(f"{where}: must be a mapping")
            continue
        name = profile.get("name")
        where = f"{where} ({name})" if name else where
        if not isinstance(name, str) or not PROFILE_NAME.match(name):
            errors.append(f"{where}: name must match {PROFILE_NAME.pattern}")
        elif name in seen:
            errors.append(f"{where}: duplicate profile name")
        else:
            seen.add(name)
        instances = profile.get("instances")
        if not _is_int(instances) or instances < 0:
            errors.append(f"{where}: instances must be an integer >= 0")
        consumer = {key: profile[key] for key in ("queue", "prefetch", "concurrency") if key in profile}
        errors.extend(f"{where}: {problem}" for problem in consumer_problems(consumer))
        handlers = profile.get("handlers")
        if not isinstance(handlers, Mapping) or not handlers:
            errors.append(f"{where}: handlers must map routing-key patterns to 'package.module:function'")
        else:
            for pattern, path in handlers.items():
                if not isinstance(path, str) or not HANDLER_PATH.match(path):
                    errors.append(f"{where}: handler for {pattern!r} must look like 'package.module:function'")
    return errors


def heartbeat_errors(heartbeat: Any, worker_source_dir: str) -> list[str]:
    """The problem with warren_worker_amqp_heartbeat, by the worker's own bounds for broker.heartbeat."""
    _worker_config(worker_source_dir)  # puts the worker's source on the path
    broker_config = importlib.import_module("warren.broker_config")
    low, high = broker_config.MIN_HEARTBEAT, broker_config.MAX_HEARTBEAT
    value = _as_int(heartbeat)
    if _is_int(value) and (value == 0 or low <= value <= high):
        return []
    return [
        f"warren_worker_amqp_heartbeat must be 0 (off) or between {low} and {high} seconds "
        f"(shorter ones drop healthy connections on a busy host), got {heartbeat!r}"
    ]


def _worker_config(worker_source_dir: str) -> Any:
    """warren.config from the worker's source (stdlib only), which the controller has to build the wheels."""
    source = f"{worker_source_dir}/src"
    if source not in sys.path:
        sys.path.insert(0, source)
    return importlib.import_module("warren.config")


def settings_errors(endpoints: Any, password: Any, drain_timeout: Any, max_attempts: Any) -> list[str]:
    """Every problem with the broker and lifecycle settings; the rest of the profile TOML is checked on the host
    by `warren-worker --check` before it is installed."""
    errors = []
    if not isinstance(endpoints, list) or not endpoints:
        errors.append(
            "warren_worker_amqp_endpoints is empty: add broker hosts to the rabbitmq group or list amqp:// URLs"
        )
    elif not all(isinstance(url, str) and url.startswith(("amqp://", "amqps://")) for url in endpoints):
        errors.append("warren_worker_amqp_endpoints: every entry must be an amqp:// or amqps:// URL")
    if not isinstance(password, str) or not password:
        errors.append(
            "warren_worker_amqp_password is empty: set warren_amqp_password from Ansible Vault "
            "(the local inventory generates one at deploy time)"
        )
    # Extra vars given as key=value arrive as strings.
    drain_timeout, max_attempts = _as_int(drain_timeout), _as_int(max_attempts)
    if not _is_int(drain_timeout) or drain_timeout <= 0:
        errors.append(f"warren_worker_drain_timeout must be a positive number of seconds, got {drain_timeout!r}")
    if not _is_int(max_attempts) or max_attempts < 1:
        errors.append(f"warren_worker_retry_max_attempts must be an integer >= 1, got {max_attempts!r}")
    return errors


# A systemd time span as the unit's LogRateLimitIntervalSec= takes it: "10s", "1min", "500ms", or bare seconds.
_TIMESPAN = re.compile(r"^\s*[0-9]+\s*(us|usec|ms|msec|s|sec|seconds?|m|min|minutes?|h|hr|hours?)?\s*$")


def log_settings_errors(rate_interval: Any, rate_burst: Any, summary_interval: Any, tutorial_rate: Any) -> list[str]:
    """Every problem with the logging settings that go into the unit (the profile's are checked by --check)."""
    errors = []
    is_span = isinstance(rate_interval, int | str) and not isinstance(rate_interval, bool)
    if not is_span or not _TIMESPAN.match(str(rate_interval)):
        errors.append(
            "warren_worker_log_rate_limit_interval must be a systemd time span such as 10s or 1min, "
            f"got {rate_interval!r}"
        )
    for name, value in (
        ("warren_worker_log_rate_limit_burst", rate_burst),
        ("warren_worker_log_summary_interval", summary_interval),
        ("warren_worker_log_tutorial_rate", tutorial_rate),
    ):
        value = _as_int(value)
        if not _is_int(value) or value < 0:
            errors.append(f"{name} must be an integer >= 0, got {value!r}")
    return errors


def metrics_port_errors(profiles: Any, base_port: Any) -> list[str]:
    """Problems with the metrics ports the instances would get: each profile has a block of ten, so an 11th
    instance would listen on the next profile's first port; and no port may pass 65535."""
    base = _as_int(base_port)
    if not _is_int(base) or not 0 <= base <= 65535:
        return [f"warren_worker_metrics_base_port must be a port number (0 disables metrics), got {base_port!r}"]
    if not base or not isinstance(profiles, list):
        return []
    errors = []
    for index, profile in enumerate(profiles):
        instances = profile.get("instances") if isinstance(profile, Mapping) else None
        if not _is_int(instances):
            continue  # profile_errors names it
        where = f"warren_worker_profiles[{index}] ({profile.get('name')})"
        highest = base + METRICS_PORTS_PER_PROFILE * index + instances
        if instances > METRICS_PORTS_PER_PROFILE:
            errors.append(
                f"{where}: at most {METRICS_PORTS_PER_PROFILE} instances while metrics are on, got {instances}: "
                f"instance n of profile p listens on warren_worker_metrics_base_port + "
                f"{METRICS_PORTS_PER_PROFILE}*p + n, so instance {METRICS_PORTS_PER_PROFILE + 1} would take "
                "the next profile's port"
            )
        elif instances and highest > 65535:
            errors.append(f"{where}: instance {instances} would listen on port {highest}, beyond 65535")
    return errors


def tls_client_errors(settings: Mapping[str, Any]) -> list[str]:
    """Every problem with the mutual-TLS settings: where the worker host's client certificate comes from. No key
    is passed in, only whether there is one."""
    if not settings.get("client_cert"):
        return []
    errors = []
    if not settings.get("amqp_tls"):
        errors.append(
            "warren_worker_tls_client_cert needs warren_worker_amqp_tls: a client certificate is for amqps://"
        )
    if not settings.get("ca_file"):
        errors.append(
            "warren_worker_tls_client_cert needs warren_worker_tls_ca_file (warren_tls_ca_file): the CA the brokers "
            "and the client certificate share"
        )
    brought = bool(settings.get("cert_file"))
    if brought != bool(settings.get("has_key")):
        errors.append("warren_worker_tls_cert_file and warren_worker_tls_key go together (the key from Ansible Vault)")
    elif not brought and not settings.get("pki_dir"):
        errors.append(
            "warren_worker_tls_client_cert needs warren_worker_tls_pki_dir (warren_tls_pki_dir), where the role keeps "
            "the worker hosts' keys and certificates, unless each host brings its own (warren_worker_tls_cert_file)"
        )
    elif not brought and not settings.get("can_sign"):
        errors.append(
            "warren_worker_tls_client_cert: nothing to sign a client certificate with: no CA key in "
            "warren_worker_tls_pki_dir (ca.key) and no warren_worker_tls_ca_key; bring the CA's key, or each worker "
            "host's certificate (warren_worker_tls_cert_file) and key (warren_worker_tls_key)"
        )
    valid, renew = _as_int(settings.get("valid_days")), _as_int(settings.get("renew_before_days"))
    if not (_is_int(valid) and _is_int(renew) and 1 <= renew < valid):
        errors.append(
            "warren_worker_tls_cert_valid_days must be greater than warren_worker_tls_renew_before_days (at least 1), "
            f"got {valid!r} and {renew!r}"
        )
    return errors


def issued_by(chain_pem: str, ca_pem: str) -> bool:
    """Whether the first certificate of chain_pem is signed by a CA of ca_pem, through the intermediates that follow
    it in chain_pem: the signatures are checked, not only the names."""
    # Imported here: only mutual TLS needs it, and the controller has it for community.crypto then.
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature

    try:
        chain = x509.load_pem_x509_certificates(chain_pem.encode())
        cas = x509.load_pem_x509_certificates(ca_pem.encode())
    except ValueError:
        return False

    def signed(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
        try:
            cert.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            return False
        return True

    links = all(signed(cert, issuer) for cert, issuer in itertools.pairwise(chain))
    return links and any(signed(chain[-1], ca) for ca in cas)


def _as_int(value: Any) -> Any:
    return int(value) if isinstance(value, str) and value.strip().isdigit() else value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "warren_worker_instances": worker_instances,
            "warren_amqp_endpoints": amqp_endpoints,
            "warren_worker_profile_errors": profile_errors,
            "warren_worker_settings_errors": settings_errors,
            "warren_worker_heartbeat_errors": heartbeat_errors,
            "warren_worker_log_settings_errors": log_settings_errors,
            "warren_worker_metrics_port_errors": metrics_port_errors,
            "warren_worker_tls_client_errors": tls_client_errors,
            "warren_worker_issued_by": issued_by,
        }
