"""warren-publish and its library on connection loss: several endpoints, a lost connection replaced with the
unconfirmed messages sent again, or a clear failure with the count confirmed. The connection runs through
`NetCut`, which drops the publisher's end of it."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from conftest import Broker
from faults import dead_port
from netcut import NetCut

from warren.exits import EX_OK
from warren.outgoing import OutgoingMessage, Unconfirmed
from warren.publisher import Publisher

pytestmark = pytest.mark.integration

TOTAL, LOSS_AT = 3000, 1000
WINDOW = 100  # small, so that confirms come back before the loss


def messages(net: NetCut, heal: bool) -> Iterator[OutgoingMessage]:
    """TOTAL messages; after LOSS_AT of them the publisher's connection is dropped (healed at once or not)."""
    for i in range(TOTAL):
        if i == LOSS_AT:
            net.cut(drop_clients=True)
            if heal:
                net.heal()
        yield OutgoingMessage.json("", "test.work", {"i": i})


def ids_in_queue(mq: Broker) -> list[str]:
    return [props.message_id for props, _body in mq.get_all("test.work", limit=2 * TOTAL)]


def test_a_lost_connection_is_replaced_and_every_message_confirmed(mq: Broker) -> None:
    with NetCut() as net, Publisher(net.url, vhost=mq.vhost, timeout=10, window=WINDOW) as pub:
        ids: list[str] = []

        def tracked() -> Iterator[OutgoingMessage]:
            for msg in messages(net, heal=True):
                ids.append(msg.message_id)
                yield msg

        result = pub.publish_many(tracked())
    assert result.ok and result.confirmed == TOTAL
    assert result.reconnects == 1 and result.republished > 0
    in_queue = ids_in_queue(mq)
    assert set(in_queue) == set(ids), "every message arrived"
    assert len(in_queue) - TOTAL <= result.republished, "only those sent again may arrive twice"


def test_a_connection_not_replaced_in_time_fails_with_the_count_confirmed(mq: Broker) -> None:
    sent: list[OutgoingMessage] = []

    def tracked(source: Iterator[OutgoingMessage]) -> Iterator[OutgoingMessage]:
        for msg in source:
            sent.append(msg)
            yield msg

    with (
        NetCut() as net,
        Publisher(net.url, vhost=mq.vhost, timeout=3, window=WINDOW) as pub,
        pytest.raises(Unconfirmed) as failure,
    ):
        pub.publish_many(tracked(messages(net, heal=False)))
    text, exc = str(failure.value), failure.value
    assert text.startswith(f"lost the connection to amqp://127.0.0.1:{net.port} ("), text
    assert "gave up after 3s without progress" in text
    assert text.endswith(
        f": {exc.confirmed} messages confirmed, {len(exc.unconfirmed)} unconfirmed "
        "(those may or may not have reached the broker)"
    ), text
    # Publishing stops at the loss: no more than a window beyond it was sent.
    assert exc.confirmed > 0 and exc.confirmed + len(exc.unconfirmed) == len(sent) <= LOSS_AT + WINDOW
    unconfirmed = {m.message_id for m in exc.unconfirmed}
    confirmed = {m.message_id for m in sent} - unconfirmed
    assert len(confirmed) == exc.confirmed
    assert confirmed <= set(ids_in_queue(mq)), "every message counted as confirmed is in the queue"


def test_warren_publish_takes_several_endpoints(mq: Broker) -> None:
    with dead_port() as port:
        out = mq.run(
            "warren-publish",
            "--vhost",
            mq.vhost,
            "--url",
            f"amqp://127.0.0.1:{port}",
            "--url",
            "amqp://127.0.0.1:5672",
            "--routing-key",
            "test.work",
            json.dumps({"a": 1}),
        )
    assert out.returncode == EX_OK, out.stderr
    assert len(ids_in_queue(mq)) == 1
