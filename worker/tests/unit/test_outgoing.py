"""ConfirmTracker: what the broker's confirms and returns say about the messages published on a channel, and
which messages are due to be published again (refused by a nack, or left unconfirmed by a lost channel)."""

from __future__ import annotations

import pytest

from warren.outgoing import DEFAULT_MAX_ATTEMPTS, ConfirmTracker, OutgoingMessage, resend_delay


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _messages(count: int) -> list[OutgoingMessage]:
    return [OutgoingMessage("events", "order.created", b"{}", f"m{n}") for n in range(1, count + 1)]


def _tracker_with(
    messages: list[OutgoingMessage], max_attempts: int = DEFAULT_MAX_ATTEMPTS, clock: Clock | None = None
) -> ConfirmTracker:
    tracker = ConfirmTracker(max_attempts, clock or Clock())
    for msg in messages:
        tracker.sent(msg)
    return tracker


def test_a_multiple_ack_confirms_every_message_up_to_its_tag_and_no_further() -> None:
    tracker = _tracker_with(_messages(5))
    tracker.confirm(3, multiple=True, acked=True)
    assert tracker.result.confirmed == 3
    assert len(tracker) == 2


def test_with_one_attempt_a_single_nack_fails_only_that_message() -> None:
    msgs = _messages(3)
    tracker = _tracker_with(msgs, max_attempts=1)
    tracker.confirm(2, multiple=False, acked=False)
    assert tracker.result.nacked == [msgs[1]]
    assert tracker.result.confirmed == 0
    assert len(tracker) == 2
    assert tracker.waiting == 0
    assert tracker.refused_on_channel  # the publisher sends nothing more on this channel


def test_a_nacked_message_is_due_again_after_its_delay_with_the_next_attempt() -> None:
    clock = Clock()
    msgs = _messages(3)
    tracker = _tracker_with(msgs, clock=clock)
    tracker.confirm(2, multiple=False, acked=False)
    assert tracker.result.nacked == [] and tracker.refused_on_channel
    assert (tracker.waiting, tracker.refused_waiting) == (1, 1)
    assert tracker.next_due() == clock.now + resend_delay(1)
    assert tracker.take_due(clock.now) is None  # not before its delay
    assert tracker.result.resent == 0
    clock.now += resend_delay(1)
    assert tracker.take_due(clock.now) == (msgs[1], 2)  # the same message, unchanged: same message_id
    assert tracker.result.resent == 1
    assert tracker.waiting == 0 and tracker.next_due() is None


def test_a_message_nacked_on_every_attempt_fails_at_the_bound_with_its_id() -> None:
    clock = Clock()
    (msg,) = _messages(1)
    tracker = _tracker_with([msg], max_attempts=3, clock=clock)
    for attempt in (1, 2, 3):
        if attempt > 1:
            tracker.new_channel()
            clock.now += resend_delay(attempt - 1)
            assert tracker.take_due(clock.now) == (msg, attempt)
            tracker.sent(msg, attempt)
        tracker.confirm(1, multiple=False, acked=False)
    assert tracker.result.nacked == [msg]
    assert tracker.result.resent == 2
    assert tracker.waiting == 0


def test_the_resend_delay_doubles_up_to_a_cap() -> None:
    assert [resend_delay(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_a_multiple_nack_schedules_each_message_and_they_come_back_in_order() -> None:
    clock = Clock()
    msgs = _messages(4)
    tracker = _tracker_with(msgs, clock=clock)
    tracker.confirm(1, multiple=False, acked=True)
    tracker.confirm(4, multiple=True, acked=False)
    assert tracker.result.confirmed == 1 and tracker.refused_waiting == 3
    clock.now += resend_delay(1)
    assert [tracker.take_due(clock.now) for _ in range(4)] == [(m, 2) for m in msgs[1:]] + [None]


def test_max_attempts_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        ConfirmTracker(max_attempts=0)


def test_a_new_run_forgets_what_a_failed_one_left_to_send_again() -> None:
    msgs = _messages(2)
    tracker = _tracker_with(msgs)
    tracker.confirm(2, multiple=True, acked=False)
    tracker.start()
    assert tracker.waiting == 0 and tracker.result.confirmed == 0


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
    clock = Clock()
    msgs = _messages(3)
    tracker = _tracker_with(msgs, clock=clock)
    tracker.confirm(1, multiple=False, acked=True)
    assert tracker.new_channel() == msgs[1:]
    assert len(tracker) == 0
    # Due at once, as the same attempt (they were not refused), and not counted as resent after a nack.
    assert tracker.refused_waiting == 0
    assert [tracker.take_due(clock.now) for _ in range(2)] == [(msgs[1], 1), (msgs[2], 1)]
    assert tracker.result.resent == 0
    tracker.sent(msgs[2])
    tracker.confirm(1, multiple=False, acked=True)  # tag 1 on the new channel is msgs[2]
    assert tracker.result.confirmed == 2
