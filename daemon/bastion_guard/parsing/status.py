"""What became of a line that produced no event."""

from __future__ import annotations

import enum


class LineStatus(enum.Enum):
    """Why a line yielded no event; counted by ``bastionctl test`` and the daemon's metrics."""

    OTHER_PROGRAM = "other_program"  # a program we do not watch (cron, kernel, ...): skipped cheaply
    NOISE = "noise"  # a known message of a watched program that carries nothing to act on
    UNMATCHED = "unmatched"  # a watched program wrote something we do not know: format drift
    MALFORMED = "malformed"  # no syslog envelope and not an sshd message either
    OVERSIZED = "oversized"  # longer than any real auth line: counted, never parsed
