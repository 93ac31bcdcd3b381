"""How deliveries ended: the outcome lines (logger `warren.outcome`) and the counts behind the metrics.

The level of each outcome's line is the production logging design (docs/operations.md, "Logs"). At the
default level (INFO) an acknowledged message writes no line of its own: at thousands of messages a second
one line each would be most of what reaches journald, and journald's rate limit drops lines without regard
to which matter. Its count and handler time stay exact in the metrics and the sd_notify status, and the
summary line (`warren.summary`) puts them in the journal. A message that fails writes one line every time:
WARNING when it is retried, ERROR when it is dead-lettered, so `journalctl -p warning` / `-p err` find them
and journald counts them in pools of their own that no number of INFO or DEBUG lines can exhaust.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from warren.logs import FieldLine, write_line
from warren.metrics import Metrics
from warren.retry import Action

if TYPE_CHECKING:
    from warren.session import Delivery

outcome_log = logging.getLogger("warren.outcome")

# The members as module globals for the per-message code: `Action.ACK` is a class attribute lookup through
# EnumType's metaclass, a global is a dict hit.
ACK, RETRY, DEAD_LETTER = Action.ACK, Action.RETRY, Action.DEAD_LETTER

OUTCOME_FIELDS = ("routing_key", "message_id", "attempt", "duration_us")

OUTCOME_LEVELS: dict[Action, int] = {ACK: logging.DEBUG, RETRY: logging.WARNING, DEAD_LETTER: logging.ERROR}
# For the per-message check whether an acked line is wanted at all (`Dispatcher.run_handler`).
ACKED_LEVEL = OUTCOME_LEVELS[ACK]


class Outcome:
    """How a delivery ended (a plain slotted class: built once per message on the hot path)."""

    __slots__ = ("action", "delay", "duration", "error", "reason")

    def __init__(
        self,
        action: Action,
        reason: str | None = None,
        error: str | None = None,
        delay: float | None = None,
        duration: float | None = None,
    ) -> None:
        self.action = action
        self.reason = reason
        self.error = error
        self.delay = delay
        self.duration = duration


def outcome_values(d: Delivery, duration: float | None) -> tuple[Any, ...]:
    """The values of every outcome line's `OUTCOME_FIELDS`, in order (the handler's run time in µs).

    Whole microseconds: an int costs a tenth of what rounding and printing a float does.
    """
    us = None if duration is None else int(duration * 1_000_000 + 0.5)
    return (d.routing_key, d.message_id, d.attempt, us)


class OutcomeLog:
    """One line per finished delivery at its outcome's level, and the outcome, failure and latency counts
    of `metrics`."""

    def __init__(self, queue: str, metrics: Metrics) -> None:
        self.metrics = metrics
        self._lines = {
            a: FieldLine(
                outcome_log,
                f"message {a.value}",
                {"outcome": a.value, "queue": queue},
                OUTCOME_FIELDS,
                OUTCOME_LEVELS[a],
            )
            for a in Action
        }
        self._acked_line = self._lines[ACK]

    def render_acked(self, d: Delivery, duration: float) -> str | None:
        """The acked line for `d`, rendered ahead for `acked` (thread-safe: handler threads call it).

        The caller checks that `outcome_log` is enabled for ACKED_LEVEL. None when the line must go through
        logging (a handler listens on the logger); then `record` writes it.
        Rendered next to the handler call rather than in the loop's result batch: measured cheaper for the
        whole worker (docs/benchmarks.md).
        """
        us = int(duration * 1_000_000 + 0.5)
        return self._acked_line.render((d.routing_key, d.message_id, d.attempt, us))

    def acked(self, count: int, lines: list[str]) -> None:
        """`count` acks queued together, with the lines rendered ahead for them (none unless DEBUG): counted
        and written at once."""
        if count:
            self.metrics.record_outcome(ACK, count)
        if lines:
            write_line("".join(lines))

    def handlers_ran(self, durations: Iterable[float]) -> None:
        self.metrics.observe_handler(durations)

    def handler_failed(self) -> None:
        self.metrics.record_failure()

    def record(self, d: Delivery) -> None:
        """Count `d.outcome` and write its line; failures say why."""
        o = d.outcome
        assert o is not None
        self.metrics.record_outcome(o.action)
        line = self._lines[o.action]
        if not line.enabled():
            return
        extra: dict[str, Any] | None = None
        if o.action is not ACK:
            extra = {}
            if o.action is RETRY:
                extra["retry_in_s"] = round(o.delay or 0.0, 3)
            if o.reason:
                extra["reason"] = o.reason
            if o.error:
                extra["error"] = o.error
        line.write(outcome_values(d, o.duration), extra)
