"""Connecting: endpoint rotation and backoff, pika parameters, telling a refusal from a failure."""

from __future__ import annotations

import pika
import pika.exceptions as pex
import pytest

from warren.connection import Endpoints, connection_parameters, describe, refuses_access
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
        None,
        "mq.example",
    )
    assert (
        connection_parameters("amqps://mq", vhost="/", username="u", password="p", timeout=1, name="n").port
        == 5671
    )
    for url in ("http://mq", "amqp://", "mq:5672"):
        with pytest.raises(ValueError, match=r"^not an amqp:// URL: "):
            connection_parameters(url, vhost="/", username="u", password="p", timeout=1, name="n")


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
