"""Connecting: endpoint rotation and backoff, pika parameters, telling a refusal from a failure, saying why
a connection failed."""

from __future__ import annotations

import socket

import pika
import pika.exceptions as pex
import pytest
from pika.adapters.utils import connection_workflow as cw

from warren.connection import (
    DEFAULT_HEARTBEAT,
    NO_HEARTBEAT_DEAD_PEER_SECONDS,
    Endpoints,
    blocked_reason,
    connection_parameters,
    describe,
    failure_reason,
    refuses_access,
    tcp_options,
)
from warren.retry import Backoff


def test_endpoints_rotate_and_back_off() -> None:
    e = Endpoints(("a", "b", "c"), Backoff(1.0, 2.0, 5.0))
    assert [e.next_url() for _ in range(5)] == ["a", "b", "c", "a", "b"]
    delays = [e.failed() for _ in range(5)]
    assert all(n / 2 <= d <= n for d, n in zip(delays, (1, 2, 4, 5, 5), strict=True)), delays
    e.succeeded()
    assert e.failures == 0 and e.failed() <= 1.0


def test_connection_parameters_for_both_programs() -> None:
    worker = connection_parameters(
        "amqp://10.0.0.1",
        vhost="/",
        username="warren",
        password="pw",
        timeout=10,
        name="warren-worker",
        heartbeat=30,
    )
    assert (worker.host, worker.port, worker.virtual_host, worker.heartbeat) == ("10.0.0.1", 5672, "/", 30)
    assert (worker.socket_timeout, worker.stack_timeout, worker.connection_attempts) == (10, 20, 1)
    assert worker.client_properties == {"connection_name": "warren-worker"}
    assert worker.credentials == pika.PlainCredentials("warren", "pw")
    assert worker.credentials.erase_on_connect is False  # the worker reconnects with them
    assert worker.ssl_options is None
    publisher = connection_parameters(
        "amqps://mq.example:5999", vhost="v", username="u", password="p", timeout=5, name="warren-publish"
    )
    assert (publisher.port, publisher.heartbeat, publisher.ssl_options.server_hostname) == (
        5999,
        DEFAULT_HEARTBEAT,
        "mq.example",
    )
    assert publisher.tcp_options == tcp_options(DEFAULT_HEARTBEAT)
    assert (
        connection_parameters("amqps://mq", vhost="/", username="u", password="p", timeout=1, name="n").port
        == 5671
    )
    for url in ("http://mq", "amqp://", "mq:5672"):
        with pytest.raises(ValueError, match=r"^not an amqp:// URL: "):
            connection_parameters(url, vhost="/", username="u", password="p", timeout=1, name="n")


def test_tcp_options_end_a_silent_connection_in_about_one_heartbeat() -> None:
    assert tcp_options(10) == {
        "TCP_USER_TIMEOUT": 10_000,
        "TCP_KEEPIDLE": 10,
        "TCP_KEEPINTVL": 3,
        "TCP_KEEPCNT": 3,
    }
    # Heartbeats off: the TCP options still bound a dead peer, to the fallback span.
    off = tcp_options(0)
    assert off["TCP_USER_TIMEOUT"] == NO_HEARTBEAT_DEAD_PEER_SECONDS * 1000
    assert (
        off["TCP_KEEPIDLE"] + off["TCP_KEEPINTVL"] * off["TCP_KEEPCNT"] <= 2 * NO_HEARTBEAT_DEAD_PEER_SECONDS
    )
    assert connection_parameters(
        "amqp://h", vhost="/", username="u", password="p", timeout=1, name="n", heartbeat=20
    ).tcp_options == tcp_options(20)


def test_describe_names_the_endpoint_with_its_port() -> None:
    assert describe("amqp://10.0.0.1") == "amqp://10.0.0.1:5672"
    assert describe("amqps://mq:5999") == "amqps://mq:5999"


@pytest.mark.parametrize(
    ("err", "refused"),
    [
        (pex.ProbableAuthenticationError("x"), True),
        (pex.ProbableAccessDeniedError("x"), True),
        (pex.AuthenticationError("PLAIN"), True),
        (pex.ConnectionClosedByBroker(403, "ACCESS_REFUSED"), True),
        (pex.ConnectionClosedByBroker(530, "NOT_ALLOWED - vhost"), True),
        (pex.ConnectionClosedByBroker(320, "CONNECTION_FORCED"), False),
        (pex.AMQPConnectionError("refused"), False),
        (pex.StreamLostError("gone"), False),
    ],
)
def test_refuses_access_tells_a_refusal_from_a_failure(err: BaseException, refused: bool) -> None:
    assert refuses_access(err) is refused


@pytest.mark.parametrize(
    ("err", "reason"),
    [
        (
            pex.AMQPConnectionError(
                cw.AMQPConnectionWorkflowFailed(
                    [cw.AMQPConnectorSocketConnectError(ConnectionRefusedError(111, "Connection refused"))]
                )
            ),
            "TCP connect failed: Connection refused",
        ),
        (
            cw.AMQPConnectionWorkflowFailed([socket.gaierror(-2, "Name or service not known")]),
            "address lookup failed: Name or service not known",
        ),
        (
            cw.AMQPConnectorAMQPHandshakeError(pex.IncompatibleProtocolError("StreamLostError", "EOF")),
            "AMQP handshake failed: IncompatibleProtocolError: ('StreamLostError', 'EOF')",
        ),
        (cw.AMQPConnectorStackTimeout("t"), "timed out before the connection was open"),
        (
            pex.ConnectionClosedByBroker(320, "CONNECTION_FORCED - broker forced connection closure"),
            "closed by the broker: 320 CONNECTION_FORCED - broker forced connection closure",
        ),
        (pex.StreamLostError("Transport indicated EOF"), "connection lost: Transport indicated EOF"),
        (pex.AMQPConnectionError(), "AMQPConnectionError"),
        (None, "no reason given"),
    ],
)
def test_failure_reason_names_the_phase_and_the_root_cause(err: BaseException | None, reason: str) -> None:
    assert failure_reason(err) == reason


def test_the_reconnect_line_says_why_then_when_and_where_the_next_attempt_goes() -> None:
    e = Endpoints(("amqp://a", "amqps://b:5999"))
    e.next_url()
    delay = e.failed()
    assert e.retry_line("cannot connect to amqp://a:5672: TCP connect failed: Connection refused", delay) == (
        "cannot connect to amqp://a:5672: TCP connect failed: Connection refused; "
        f"next attempt in {delay:.1f}s to amqps://b:5999 (1 consecutive failures)"
    )


def test_a_blocked_connection_is_named_by_the_brokers_reason() -> None:
    assert (
        blocked_reason(pika.spec.Connection.Blocked("low on disk"))
        == "broker blocked publishing: low on disk"
    )
    assert blocked_reason(pika.spec.Connection.Blocked("")) == "broker blocked publishing: no reason given"
