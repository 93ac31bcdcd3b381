"""The level of each message outcome's line: the production logging design (docs/operations.md, "Logs").

At the default level (INFO) a message that is acknowledged writes no line of its own: at thousands of
messages a second one line each would be most of what reaches journald, and journald's rate limit drops
lines without regard to which matter. Its count and handler time are exact in the metrics and the
sd_notify status, and the periodic summary line (`warren.summary`) puts them in the journal. A message
that fails writes one line every time: WARNING when it is retried, ERROR when it is dead-lettered, so
`journalctl -p warning` / `-p err` find them and, under systemd, journald counts them in pools of their
own that no number of INFO or DEBUG lines can exhaust.
"""

from __future__ import annotations

import logging

from warren.retry import Action

OUTCOME_LEVELS: dict[Action, int] = {
    Action.ACK: logging.DEBUG,
    Action.RETRY: logging.WARNING,
    Action.DEAD_LETTER: logging.ERROR,
}
