"""Exit statuses of warren-worker and warren-publish (sysexits.h numbers where one fits; docs/design.md).

The warren_worker role's unit template reads `OPERATOR_MUST_FIX` from its own variable
(`__warren_worker_no_restart_exit_statuses`); a role test checks that the two agree.
"""

from __future__ import annotations

EX_OK = 0
EX_FAILURE = 1  # anything unexpected
EX_USAGE = 2  # argparse's own status; also invalid input to warren-publish
EX_UNROUTABLE = 3  # warren-publish: a message matched no queue, or a replay left messages behind
EX_UNCONFIRMED = 4  # warren-publish: nacked, or the connection died with messages unconfirmed
EX_UNAVAILABLE = 69  # warren-publish: the broker is unreachable
EX_CERTIFICATE = 76  # the broker's TLS certificate was refused: untrusted, name mismatch or expired
EX_NOPERM = 77  # the broker refused the credentials, the vhost or the queue
EX_CONFIG = 78  # invalid configuration

# Statuses systemd must not restart a worker on: only an operator can fix their cause.
OPERATOR_MUST_FIX = (EX_CERTIFICATE, EX_NOPERM, EX_CONFIG)
