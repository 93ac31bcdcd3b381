"""warren-publish as a process: confirms, unroutable exit status, bulk JSON lines, invalid input."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import Broker

pytestmark = pytest.mark.integration


def publish(mq: Broker, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return mq.run("warren-publish", "--vhost", mq.vhost, *args, stdin=stdin)


def test_single_message_is_persistent_with_message_id(mq: Broker) -> None:
    out = publish(mq, "--exchange", "events", "--routing-key", "order.created", '{"order_id":123}')
    assert out.returncode == 0, out.stderr
    ((props, body),) = mq.get_all("order.events")
    assert json.loads(body) == {"order_id": 123}
    assert props.delivery_mode == 2
    assert props.content_type == "application/json"
    assert len(props.message_id) == 36


def test_unroutable_exits_non_zero(mq: Broker) -> None:
    out = publish(mq, "--exchange", "events", "--routing-key", "invoice.created", '{"id":1}')
    assert out.returncode == 3
    assert "unroutable: exchange 'events' routing key 'invoice.created' matches no queue" in out.stderr


def test_bulk_json_lines_with_envelopes_and_a_bad_line(mq: Broker) -> None:
    lines = [
        json.dumps({"routing_key": "order.created", "body": {"order_id": 1}}),
        json.dumps({"order_id": 2}),  # plain body: uses --routing-key
        "{broken",
        "",
        json.dumps({"routing_key": "order.completed", "body": {"order_id": 3}, "message_id": "m-3"}),
    ]
    out = publish(
        mq, "--exchange", "events", "--routing-key", "order.updated", "--file", "-", stdin="\n".join(lines)
    )
    assert out.returncode == 2
    assert "not published: line 3: not JSON" in out.stderr
    assert "3 sent, 3 confirmed, 0 resent, 0 failed, 0 unroutable, 1 invalid input lines" in out.stderr
    got = mq.get_all("order.events")
    assert [json.loads(b)["order_id"] for _, b in got] == [1, 2, 3]
    assert got[2][0].message_id == "m-3"


def test_bulk_file_reports_each_bad_line_and_publishes_the_rest(mq: Broker, tmp_path: Path) -> None:
    lines = [
        b'{"order_id": 1}',
        b'{"order_id": "\xff"}',  # not UTF-8
        b'{"order_id": NaN}',  # Python reads it; no JSON can carry it
        b'{"order_id": 1' + b"0" * 5000 + b"}",  # over Python's 4,300 digits
        b"[" * 100_000,  # deeper than the decoder's recursion limit
        b'{"body": {"order_id": 9}, "headers": {"ratio": 0.5}}',  # pika has no AMQP float
        b'{"order_id": 2}',
    ]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    out = publish(mq, "--exchange", "events", "--routing-key", "order.created", "--file", str(path))
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    assert "not published: line 2: not UTF-8: invalid start byte at byte 14" in out.stderr
    assert "not published: line 3: body cannot be sent as JSON: Out of range float values" in out.stderr
    assert "not published: line 4: beyond the JSON decoder's limits" in out.stderr
    assert "not published: line 5: nested too deep for the JSON decoder" in out.stderr
    assert "not published: line 6: header value 0.5 has no AMQP encoding" in out.stderr
    assert "2 sent, 2 confirmed, 0 resent, 0 failed, 0 unroutable, 5 invalid input lines" in out.stderr
    assert [json.loads(b)["order_id"] for _, b in mq.get_all("order.events")] == [1, 2]


def test_invalid_body_and_no_broker(mq: Broker) -> None:
    out = publish(mq, "--routing-key", "jobs", "[1]")
    assert out.returncode == 2 and "expected a JSON object" in out.stderr
    out = publish(mq, "--url", "amqp://127.0.0.1:1/", "--routing-key", "jobs", "{}")
    assert out.returncode == 69 and out.stderr.startswith("warren-publish: ")
