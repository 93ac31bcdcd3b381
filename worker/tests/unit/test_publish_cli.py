"""warren-publish's command line: input lines and usage errors (no broker needed)."""

from __future__ import annotations

import json

import pika.exceptions as pex
import pytest

from warren.outgoing import AccessRefused, PublishError, Unconfirmed
from warren.publish_cli import InputError, failure_status, parse_line, publish_main
from warren.publisher import cured_by_reconnecting


def test_parse_line_envelope_or_plain_body() -> None:
    m = parse_line(
        '{"routing_key": "order.created", "body": {"order_id": 1}, "message_id": "m1"}', "events", None
    )
    assert (m.exchange, m.routing_key, m.message_id, json.loads(m.body)) == (
        "events",
        "order.created",
        "m1",
        {"order_id": 1},
    )
    m = parse_line('{"order_id": 2}', "events", "order.updated")
    assert (m.routing_key, json.loads(m.body)) == ("order.updated", {"order_id": 2})
    # "body" next to a non-envelope key: a plain body that happens to contain "body".
    m = parse_line('{"body": {"x": 1}, "order_id": 3}', "", "jobs")
    assert json.loads(m.body) == {"body": {"x": 1}, "order_id": 3}
    for line, reason in [
        ("{bad", "^not JSON: Expecting property name enclosed in double quotes at line 1 column 2$"),
        ("[" * 100_000, "^nested too deep for the JSON decoder$"),
        (
            '{"n": 1' + "0" * 5000 + "}",
            r"^beyond the JSON decoder's limits: Exceeds the limit \(4300 digits\)",
        ),
        (
            '{"routing_key": "k", "body": {"n": NaN}}',
            "^body cannot be sent as JSON: Out of range float values are not JSON compliant",
        ),
        (
            '{"routing_key": "k", "body": {"n": 1e999}}',
            "^body cannot be sent as JSON: Out of range float values are not JSON compliant",
        ),
        (
            '{"routing_key": "k", "body": {"s": "\\ud800"}}',
            "^body cannot be sent as JSON: 'utf-8' codec can't encode character '\\\\ud800'",
        ),
        (
            '{"routing_key": "k", "body": {}, "headers": {"ratio": [1, 0.5]}}',
            r"^header value 0\.5 has no AMQP encoding; send it as text$",
        ),
        (
            '{"routing_key": "k", "body": {}, "headers": {"id": 123456789012345678901234567890}}',
            "^a header integer is beyond AMQP's 64 bits$",
        ),
        (
            '{"routing_key": "k", "body": {}, "headers": {"' + "h" * 256 + '": 1}}',
            "^a header name is longer than AMQP's 255 bytes$",
        ),
        ("[1]", "expected a JSON object, got list"),
        ('{"body": 5, "routing_key": "k"}', "envelope body must be a JSON object"),
        ('{"a": 1}', "no routing key"),
    ]:
        with pytest.raises(InputError, match=reason):
            parse_line(line, "", None)


def test_publish_cli_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        publish_main([])
    assert info.value.code == 2
    assert "give exactly one of" in capsys.readouterr().err
    assert publish_main(["{}"]) == 2
    assert "--routing-key is required" in capsys.readouterr().err


def test_a_run_that_fails_as_a_whole_exits_by_the_exceptions_type() -> None:
    # Decided by type, never by searching the exception's text.
    assert failure_status(AccessRefused("access refused: 403")) == 77
    assert failure_status(Unconfirmed("StreamLostError; 5 messages confirmed, 3 unconfirmed")) == 4
    assert failure_status(PublishError("cannot connect: AMQPConnectionError: confirmed")) == 69


def test_several_urls_are_checked_before_connecting(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--routing-key", "k", "--url", "amqp://127.0.0.1:1", "--url", "http://mq", "{}"]
    assert publish_main(args) == 2
    assert capsys.readouterr().err == "warren-publish: not an amqp:// URL: 'http://mq'\n"
    with pytest.raises(SystemExit) as info:
        publish_main(["--replay-dlq", "q.dlq", "--url", "amqp://a", "--url", "amqp://b"])
    assert info.value.code == 2
    assert "--replay-dlq takes one --url" in capsys.readouterr().err


def test_only_a_lost_connection_is_replaced() -> None:
    assert cured_by_reconnecting(pex.StreamLostError("Transport indicated EOF"))
    assert cured_by_reconnecting(pex.AMQPHeartbeatTimeout("no activity"))
    assert cured_by_reconnecting(pex.ConnectionClosedByBroker(320, "CONNECTION_FORCED - shutdown"))
    # A new connection would meet these again, or the program asked for it.
    assert not cured_by_reconnecting(pex.ConnectionClosedByBroker(403, "ACCESS_REFUSED"))
    assert not cured_by_reconnecting(pex.ConnectionClosedByClient(200, "Normal shutdown"))
    assert not cured_by_reconnecting(pex.ChannelClosedByBroker(404, "NOT_FOUND - no exchange"))
    assert not cured_by_reconnecting(PublishError("no confirms within 3s"))
    assert not cured_by_reconnecting(None)


def test_max_attempts_is_documented_and_at_least_one(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        publish_main(["--help"])
    assert "--max-attempts N" in " ".join(capsys.readouterr().out.split())
    with pytest.raises(SystemExit) as info:
        publish_main(["--routing-key", "k", "--max-attempts", "0", "{}"])
    assert info.value.code == 2
    assert "--max-attempts must be >= 1" in capsys.readouterr().err
