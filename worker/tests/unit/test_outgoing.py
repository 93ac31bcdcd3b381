"""ConfirmTracker: what the broker's confirms and returns say about the messages published on a channel."""

from __future__ import annotations

from warren.outgoing import ConfirmTracker, OutgoingMessage


def _messages(count: int) -> list[OutgoingMessage]:
    return [OutgoingMessage("events", "order.created", b"{}", f"m{n}") for n in range(1, count + 1)]


def _tracker_with(messages: list[OutgoingMessage]) -> ConfirmTracker:
    tracker = ConfirmTracker()
    for msg in messages:
        tracker.sent(msg)
    return tracker


def test_a_multiple_ack_confirms_every_message_up_to_its_tag_and_no_further() -> None:
    tracker = _tracker_with(_messages(5))
    tracker.confirm(3, multiple=True, acked=True)
    assert tracker.result.confirmed == 3
    assert len(tracker) == 2


def test_a_single_nack_refuses_only_that_message() -> None:
    msgs = _messages(3)
    tracker = _tracker_with(msgs)
    tracker.confirm(2, multiple=False, acked=False)
    assert tracker.result.nacked == [msgs[1]]
    assert tracker.result.confirmed == 0
    assert len(tracker) == 2


def test_a_returned_message_counts_as_returned_when_its_confirm_arrives() -> None:
    msgs = _messages(2)
    tracker = _tracker_with(msgs)
    tracker.returned("m1", "312 NO_ROUTE")
    tracker.confirm(2, multiple=True, acked=True)
    assert tracker.result.returned == [(msgs[0], "312 NO_ROUTE")]
    assert tracker.result.confirmed == 1
    assert tracker.result.ok is False


def test_a_confirm_for_an_unknown_tag_changes_nothing() -> None:
    tracker = _tracker_with(_messages(1))
    tracker.confirm(7, multiple=False, acked=True)
    assert tracker.result.confirmed == 0
    assert len(tracker) == 1


def test_a_new_channel_hands_back_the_unconfirmed_and_numbers_from_one_again() -> None:
    msgs = _messages(3)
    tracker = _tracker_with(msgs)
    tracker.confirm(1, multiple=False, acked=True)
    assert tracker.new_channel() == msgs[1:]
    assert len(tracker) == 0
    tracker.sent(msgs[2])
    tracker.confirm(1, multiple=False, acked=True)  # tag 1 on the new channel is msgs[2]
    assert tracker.result.confirmed == 2
