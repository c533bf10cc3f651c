"""Decisions: what the rules concluded, as plain data.

A decision is the only thing the detection core hands to enforcement and alerting. It carries its rule,
target, duration and evidence, and where it came from, so decisions made on another bastion (or by a
shared ban engine) can be applied through the same path as our own.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Verdict(enum.StrEnum):
    """What to do."""

    BAN = "ban"
    ALERT = "alert"


@dataclass(frozen=True, slots=True)
class Evidence:
    """One log line that counted towards a decision."""

    epoch: float
    source: str
    position: int


@dataclass(frozen=True, slots=True)
class Decision:
    """A ban or an alert, with why.

    ``target`` is an address (``203.0.113.7``), a network (``2001:db8:1:2::/64``) or, for alerts keyed
    by user, a user name. ``expires`` is ``None`` for alerts.
    """

    verdict: Verdict
    rule: str
    target: str
    epoch: float
    duration_secs: float | None
    count: int
    offence: int
    reason: str
    evidence: tuple[Evidence, ...]
    user: str | None = None
    origin: str = "local"

    @property
    def expires(self) -> float | None:
        """Event time at which a ban ends."""
        return None if self.duration_secs is None else self.epoch + self.duration_secs
