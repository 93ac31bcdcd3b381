"""TLS to the broker, for both programs: a client context that trusts only the given CA, checks the broker's
name and speaks TLS 1.2 or later; and which certificate problem stopped a connection, for the one line that
says so and the exit status (exits.EX_CERTIFICATE). There is no fallback to plain AMQP: an amqps:// endpoint
either verifies or fails."""

from __future__ import annotations

import logging
import ssl

from warren.exits import EX_CERTIFICATE
from warren.toml_reader import TomlReader

# OpenSSL's X509_V_ERR_* codes, grouped by what an operator has to do about them.
_EXPIRED = {9: "not yet valid", 10: "expired"}
_NAME_MISMATCH = 62
_UNTRUSTED = frozenset({2, 18, 19, 20, 21})


def client_context(
    ca_file: str | None, cert_file: str | None = None, key_file: str | None = None
) -> ssl.SSLContext:
    """A context that verifies the broker against `ca_file` only (the system's CAs when None) and its name,
    refuses TLS below 1.2, and presents `cert_file`/`key_file` when the broker asks (mutual TLS).

    OSError when a file cannot be read, ssl.SSLError when it holds no usable certificate or key.
    """
    context = ssl.create_default_context(cafile=ca_file)  # CERT_REQUIRED and check_hostname
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file:
        context.load_cert_chain(cert_file, key_file or None)
    return context


def read_tls_files(r: TomlReader) -> tuple[str | None, str | None, str | None]:
    """The profile's broker.ca_file, cert_file and key_file, each loaded once here so that a missing or bad
    file is a configuration error (exit 78) rather than a failure at every connection attempt."""
    ca_file, cert_file, key_file = (
        r.get("broker", key, str, None) or None for key in ("ca_file", "cert_file", "key_file")
    )
    if key_file and not cert_file:
        r.problems.append("broker.key_file needs broker.cert_file")
    elif ca_file or cert_file:
        try:
            client_context(ca_file, cert_file, key_file)
        except (OSError, ssl.SSLError) as exc:
            files = ", ".join(f for f in (ca_file, cert_file, key_file) if f)
            r.problems.append(f"broker TLS files ({files}) unusable: {getattr(exc, 'strerror', None) or exc}")
    return ca_file, cert_file, key_file


class CertificateRefusals:
    """Connection attempts in a row that failed on the broker's certificate. Once every endpoint has refused
    one, only an operator can help (a new certificate or CA), so the caller exits rather than retrying."""

    def __init__(self, endpoints: int, log: logging.Logger) -> None:
        self.endpoints = endpoints
        self.log = log
        self.in_a_row = 0

    def connected(self) -> None:
        self.in_a_row = 0

    def every_endpoint_refused(self, err: BaseException, where: str) -> bool:
        """Record a failed attempt on `where`; True when the last `endpoints` attempts all refused."""
        problem = certificate_problem(err)
        if problem is None:
            self.in_a_row = 0
            return False
        self.log.error("TLS: broker %s refused: %s", where, problem)
        self.in_a_row += 1
        if self.in_a_row < self.endpoints:
            return False
        self.log.error(
            "TLS: the certificate of every broker endpoint was refused; exiting with status %d",
            EX_CERTIFICATE,
        )
        return True


def certificate_problem(err: BaseException | None) -> str | None:
    """Why the broker's certificate was refused ("untrusted ...", "name mismatch ...", "expired ..."), or None
    when `err` (pika wraps it several layers deep) is not a certificate verification failure."""
    cause = _verification_error(err, depth=0)
    if cause is None:
        return None
    code, detail = cause.verify_code, cause.verify_message
    if code in _EXPIRED:
        return f"certificate {_EXPIRED[code]} ({detail})"
    if code == _NAME_MISMATCH:
        return f"certificate name mismatch ({detail})"
    if code in _UNTRUSTED:
        return f"untrusted certificate: not signed by the configured CA ({detail})"
    return f"certificate refused ({detail})"


def _verification_error(err: BaseException | None, depth: int) -> ssl.SSLCertVerificationError | None:
    if err is None or depth > 8:
        return None
    if isinstance(err, ssl.SSLCertVerificationError):
        return err
    inner: list[BaseException | None] = [getattr(err, "exception", None), err.__cause__, err.__context__]
    nested = getattr(err, "exceptions", None)
    if nested:
        inner.append(nested[-1])
    inner += [arg for arg in err.args if isinstance(arg, BaseException)]
    for candidate in inner:
        found = _verification_error(candidate, depth + 1)
        if found is not None:
            return found
    return None
