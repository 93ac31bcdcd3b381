"""Routing, decoding, retry decisions, backoff, headers."""

from __future__ import annotations

import random

import pytest

from warren.decoding import check_required, decode_body
from warren.handlers import InvalidMessage
from warren.retry import (
    Action,
    Backoff,
    attempt_of,
    dead_letter_headers,
    decide_failure,
    error_line,
    expiration_ms,
    origin,
    replay_headers,
    retry_headers,
)
from warren.routing import Router, pattern_problem, topic_matches


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        ("order.*", "order.created", True),
        ("order.*", "order", False),
        ("order.*", "order.created.v2", False),
        ("order.#", "order", True),
        ("order.#", "order.a.b", True),
        ("#", "", True),
        ("#", "anything.at.all", True),
        ("*.created", "order.created", True),
        ("#.created", "a.b.created", True),
        ("#.created", "a.b.updated", False),
        ("a.#.z", "a.z", True),
        ("a.#.z", "a.b.c.z", True),
        ("a.#.z", "a.b.c", False),
        ("whatsapp", "whatsapp", True),
        ("whatsapp", "whatsapp.x", False),
        ("*", "", True),  # one (empty) word, as the broker does
    ],
)
def test_topic_matches(pattern: str, key: str, expected: bool) -> None:
    assert topic_matches(pattern, key) is expected


def test_pattern_problems() -> None:
    assert pattern_problem("order.*") is None
    assert pattern_problem("#") is None
    assert pattern_problem("") == "empty routing-key pattern"
    assert pattern_problem("a..b") == "routing-key pattern 'a..b' has an empty word"
    assert "whole words" in (pattern_problem("a.b#") or "")


def test_router_first_match_wins_and_caches() -> None:
    router = Router([("order.created", "specific"), ("order.*", "general"), ("#", "fallback")])
    assert router.lookup("order.created").target == "specific"  # type: ignore[union-attr]
    assert router.lookup("order.updated").target == "general"  # type: ignore[union-attr]
    assert router.lookup("jobs").target == "fallback"  # type: ignore[union-attr]
    assert Router([("order.*", 1)]).lookup("jobs") is None


HUGE_INT = b'{"n": 1' + b"0" * 5000 + b"}"  # valid JSON, but Python converts at most 4,300 digits


def test_decode_body() -> None:
    assert decode_body(b'{"order_id": 123}') == {"order_id": 123}
    assert decode_body(b' \r\n{"order_id": 4}\n ') == {"order_id": 4}  # blanks around are JSON too
    assert decode_body(b'{"order_id": 5}\t\r\n') == {"order_id": 5}
    assert decode_body('{"x": "é"}'.encode(), "application/json; charset=utf-8") == {"x": "é"}
    cases = {
        b"": "body is not JSON: Expecting value at line 1 column 1",
        b"{bad": "body is not JSON: Expecting property name enclosed in double quotes at line 1 column 2",
        b'{"a": 1} {"b": 2}': "body is not JSON: Extra data at line 1 column 10",
        '{"a": 1}\u2003'.encode(): "body is not JSON: Extra data at line 1 column 9",  # not a JSON blank
        b'\n  {"a": }': "body is not JSON: Expecting value at line 2 column 9",
        b'"text"': "body must be a JSON object, got str",
        b"\xff\xfe": "body is not UTF-8: invalid start byte at byte 0",
        b"[" * 100_000: "body is nested too deep for the JSON decoder",
        HUGE_INT: "body is beyond the JSON decoder's limits: Exceeds the limit (4300 digits) for integer "
        "string conversion: value has 5001 digits; use sys.set_int_max_str_digits() to increase the limit",
    }
    for body, reason in cases.items():
        with pytest.raises(InvalidMessage) as info:
            decode_body(body)
        assert str(info.value) == reason
    for plain in ("UTF-8", "utf-8", "identity", ""):
        assert decode_body(b"{}", "application/json", plain) == {}
    with pytest.raises(InvalidMessage, match=r"^unsupported content encoding 'gzip'$"):
        decode_body(b"\x1f\x8b\x08\x00", "application/json", "gzip")
    with pytest.raises(InvalidMessage, match="unsupported content type 'text/plain'"):
        decode_body(b"{}", "text/plain")


def test_check_required() -> None:
    check_required({"phone": 1, "message": None}, ("phone", "message"))
    with pytest.raises(InvalidMessage, match=r"^missing required field message$"):
        check_required({"phone": 1}, ("phone", "message"))
    with pytest.raises(InvalidMessage, match=r"^missing required fields phone, message$"):
        check_required({}, ("phone", "message"))


def test_backoff_is_capped_exponential_with_equal_jitter() -> None:
    b = Backoff(initial=1.0, multiplier=2.0, maximum=10.0)

    class Fixed(random.Random):
        def __init__(self, value: float) -> None:
            super().__init__()
            self.value = value

        def random(self) -> float:
            return self.value

    assert [b.delay(n, Fixed(1.0)) for n in (1, 2, 3, 4, 5, 100_000)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert [b.delay(n, Fixed(0.0)) for n in (1, 2, 5)] == [0.5, 1.0, 5.0]
    rng = random.Random(7)
    samples = [b.delay(3, rng) for _ in range(1000)]
    assert min(samples) >= 2.0 and max(samples) <= 4.0 and max(samples) - min(samples) > 1.5


def test_retry_decisions() -> None:
    b = Backoff(1.0, 2.0, 60.0)
    rng = random.Random(1)
    d = decide_failure(1, 3, b, rng)
    assert (d.action, d.next_attempt) == (Action.RETRY, 2) and d.delay is not None and 0.5 <= d.delay <= 1.0
    d = decide_failure(2, 3, b, rng)
    assert (d.action, d.next_attempt) == (Action.RETRY, 3) and d.delay is not None and 1.0 <= d.delay <= 2.0
    assert decide_failure(3, 3, b).action is Action.DEAD_LETTER
    assert decide_failure(3, 3, b).reason == "retries-exhausted"
    assert decide_failure(1, 1, b).action is Action.DEAD_LETTER  # max_attempts 1 = no retries


def test_attempt_of() -> None:
    assert attempt_of(None) == 1
    assert attempt_of({}) == 1
    assert attempt_of({"x-warren-attempt": 3}) == 3
    assert attempt_of({"x-warren-attempt": b"4"}) == 4
    assert attempt_of({"x-warren-attempt": "junk"}) == 1
    assert attempt_of({"x-warren-attempt": -2}) == 1


def test_origin_survives_the_retry_round_trip() -> None:
    assert origin(None, "events", "order.created") == ("events", "order.created")
    # Back from order.events.retry via the default exchange, routing key = queue name.
    h = retry_headers(None, exchange="events", routing_key="order.created", next_attempt=2, error="E: x")
    assert origin(h, "", "order.events") == ("events", "order.created")
    assert origin({"x-warren-exchange": b"events", "x-warren-routing-key": b"k"}, "", "q") == ("events", "k")


def test_headers() -> None:
    base = {"trace": "abc", "x-warren-attempt": 2}
    r = retry_headers(base, exchange="events", routing_key="order.created", next_attempt=3, error="E: boom")
    assert r == {
        "trace": "abc",
        "x-warren-attempt": 3,
        "x-warren-exchange": "events",
        "x-warren-routing-key": "order.created",
        "x-warren-error": "E: boom",
    }
    assert base["x-warren-attempt"] == 2  # input not mutated
    d = dead_letter_headers(
        base, exchange="", routing_key="jobs", queue="jobs", reason="invalid-message", error="bad"
    )
    assert d["x-warren-reason"] == "invalid-message"
    assert d["x-warren-origin-queue"] == "jobs"
    assert d["x-warren-exchange"] == "" and d["x-warren-routing-key"] == "jobs"
    assert replay_headers({**d, "x-death": [{}], "trace": "abc"}) == {"trace": "abc"}


def test_error_line_and_expiration() -> None:
    assert error_line(RuntimeError("boom\n  on two lines")) == "RuntimeError: boom on two lines"
    assert error_line(KeyError()) == "KeyError"
    long = error_line(ValueError("x" * 2000))
    assert len(long) == 500 and long.endswith("...")
    assert expiration_ms(1.5) == "1500"
    assert expiration_ms(0.0001) == "1"
