"""The built-in handlers' tutorial lines: a bounded number of messages a second get them."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from conftest import Clock

from warren import tutorial
from warren.handlers import InvalidMessage, Message, order_event


@pytest.fixture
def budget() -> Iterator[None]:
    yield
    tutorial.configure(tutorial.DEFAULT_RATE)


def test_line_budget_allows_rate_a_second_and_counts_the_rest() -> None:
    clock = Clock()
    budget = tutorial.LineBudget(2, clock)
    assert [budget.take() for _ in range(4)] == [True, True, False, False]
    clock.now += 1.0
    assert budget.take() and budget.skipped == 2
    assert not tutorial.LineBudget(0, clock).take()


def test_tutorial_lines_are_logged_for_the_first_messages_of_each_second(
    budget: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "warren.handlers")
    tutorial.configure(1)
    body = {"order_id": 1, "event": "order.created"}
    order_event(Message(body, "order.created", "events", "q", "id", 1, False))
    order_event(Message(body, "order.created", "events", "q", "id", 1, False))  # same second: no lines
    assert [r.getMessage() for r in caplog.records] == [
        "Received event {'order_id': 1, 'event': 'order.created'}",
        "Processing event type order.created",
    ]
    assert tutorial.skipped() == 1
    with pytest.raises(InvalidMessage):  # the lines are sampled, the checks never
        order_event(Message({"order_id": 1, "event": "x"}, "order.x", "events", "q", "id", 1, False))
