"""A channel's session: coalesced acks, confirmed republishes, returns, and forgetting on close."""

from __future__ import annotations

import time

import pika
from conftest import FakeChannel, Props, confirm, deliver

from warren.session import REFUSED_REQUEUE_SECONDS, Session


def test_acks_are_coalesced_and_stragglers_do_not_block() -> None:
    ch = FakeChannel()
    session = Session(ch, "order.events")
    d = {tag: session.receive(deliver(tag), Props(), b"{}") for tag in range(1, 7)}

    def done(*tags: int) -> None:
        session.done([d[t] for t in tags])
        session.flush_acks()

    done(2, 3)  # 1 is still running: 2 and 3 are acked on their own, not held back
    assert ch.acks == [(2, False), (3, False)]
    done(1, 5)  # prefix 1..3 done -> one ack for 1 (2, 3 already acked); 5 on its own
    assert ch.acks[2:] == [(1, False), (5, False)]
    done(4, 6)  # 4 and 6 complete the prefix: one multiple ack
    assert ch.acks[4:] == [(6, True)]
    assert session.in_flight == 0 and session.settled()


def test_a_delivery_remembers_where_it_was_first_published() -> None:
    session = Session(FakeChannel(), "order.events")
    first = session.receive(deliver(1), pika.BasicProperties(message_id="m-1"), b"{}")
    assert (first.exchange, first.routing_key, first.attempt, first.message_id) == (
        "events",
        "order.created",
        1,
        "m-1",
    )
    headers = {"x-warren-attempt": 3, "x-warren-exchange": "events", "x-warren-routing-key": "order.updated"}
    retried = session.receive(deliver(2, "order.events", ""), pika.BasicProperties(headers=headers), b"{}")
    assert (retried.exchange, retried.routing_key, retried.attempt) == ("events", "order.updated", 3)


def test_a_republished_delivery_is_acked_only_once_the_broker_confirms() -> None:
    ch = FakeChannel()
    session = Session(ch, "order.events")
    d1, d2, d3 = (session.receive(deliver(tag), Props(), b"{%d}" % tag) for tag in (1, 2, 3))
    for d in (d1, d2, d3):
        session.publish(d, "warren.dlx", "props")
    assert [(ex, key, body) for ex, key, body, _ in ch.published] == [
        ("warren.dlx", "order.events", b"{1}"),  # routing key = the consumed queue
        ("warren.dlx", "order.events", b"{2}"),
        ("warren.dlx", "order.events", b"{3}"),
    ]
    session.flush_acks()
    assert ch.acks == [] and session.running() == 3
    assert session.confirmed(confirm(2, multiple=True)) == [d1, d2]  # publishes 1 and 2
    session.flush_acks()
    assert ch.acks == [(2, True)] and session.in_flight == 1
    assert session.confirmed(confirm(9)) == []  # not one of ours: nothing happens
    assert session.confirmed(confirm(3)) == [d3]
    session.flush_acks()
    assert ch.acks[1:] == [(3, False)] and session.in_flight == 0


def test_a_nacked_republish_requeues_the_original_after_a_pause() -> None:
    ch = FakeChannel()
    session = Session(ch, "order.events")
    d = session.receive(deliver(5), Props(), b"{}")
    session.publish(d, "warren.retry", "props")
    refused_at = time.monotonic()
    assert session.confirmed(confirm(1, ack=False)) == []
    # Held, not requeued at once (it would come straight back and be refused again); a drain need not wait.
    assert ch.nacks == [] and ch.acks == [] and session.in_flight == 1 and session.settled()
    session.requeue_due(refused_at + REFUSED_REQUEUE_SECONDS - 0.5)
    assert ch.nacks == []
    session.requeue_due(refused_at + REFUSED_REQUEUE_SECONDS + 0.5)
    assert ch.nacks == [(5, True)] and ch.acks == [] and session.in_flight == 0
    session.requeue_due(refused_at + 2 * REFUSED_REQUEUE_SECONDS)
    assert ch.nacks == [(5, True)]


def test_an_unroutable_republish_holds_its_original_until_the_channel_goes() -> None:
    ch = FakeChannel()
    session = Session(ch, "order.events")
    to_retry, to_dlq = (session.receive(deliver(tag), Props(), b"{}") for tag in (1, 2))
    session.publish(to_retry, "warren.retry", "props")
    session.publish(to_dlq, "warren.dlx", "props")
    session.returned("warren.retry")  # the return precedes the confirm of the same publish
    assert session.confirmed(confirm(2, multiple=True)) == [to_dlq]
    session.flush_acks()
    # The held delivery blocks the multiple ack but nothing else; it is never acked into the void.
    assert ch.acks == [(2, False)] and session.in_flight == 1
    assert session.settled() and session.unfinished() == 0 and session.running() == 0
    assert session.close() == 1 and session.in_flight == 0


def test_closing_forgets_everything_in_flight() -> None:
    ch = FakeChannel()
    session = Session(ch, "order.events")
    running, republished = (session.receive(deliver(tag), Props(), b"{}") for tag in (1, 2))
    session.publish(republished, "warren.dlx", "props")
    assert (session.running(), session.unfinished(), session.settled()) == (2, 2, False)
    assert session.close() == 2
    assert session.confirmed(confirm(1)) == []  # its confirm, should one still arrive, finds nothing
    session.done([running])
    session.flush_acks()
    assert ch.acks == [] and session.in_flight == 0
