"""What the state store keeps, as frozen dataclasses: read positions, bans and purge results."""

from __future__ import annotations

import json
from dataclasses import dataclass

from bastion_guard.decisions import Decision, Verdict

EvidenceRow = tuple[float, str, int]
"""One evidence line as stored: event time, source name, position in that source."""


@dataclass(frozen=True, slots=True)
class Position:
    """How far a log source has been read.

    A file source sets ``identity`` (device, inode and a hash of its first bytes) and ``offset``; a journald
    source sets ``cursor``. A position is saved only in the same transaction as the effects of every line
    before it, which is what makes restarts exactly-once.
    """

    source: str
    identity: str | None
    offset: int
    cursor: str | None


@dataclass(frozen=True, slots=True)
class BanRecord:
    """An active ban: who, by which rule, until when, and the lines that caused it."""

    target: str
    rule: str
    created: float
    expires: float
    offence: int
    reason: str
    origin: str
    evidence: tuple[EvidenceRow, ...]

    @classmethod
    def from_decision(cls, decision: Decision) -> BanRecord:
        """The record of a ban decision; alerts are not stored as bans, so they raise :class:`ValueError`."""
        if decision.verdict is not Verdict.BAN:
            raise ValueError(f"only ban decisions become ban records, not {decision.verdict.value!r}")
        expires = decision.expires
        if expires is None:
            raise ValueError(f"ban of {decision.target} by rule {decision.rule!r} has no duration")
        return cls(
            target=decision.target,
            rule=decision.rule,
            created=decision.epoch,
            expires=expires,
            offence=decision.offence,
            reason=decision.reason,
            origin=decision.origin,
            evidence=tuple((e.epoch, e.source, e.position) for e in decision.evidence),
        )


@dataclass(frozen=True, slots=True)
class Purged:
    """How many rows :meth:`StateStore.purge` deleted."""

    bans: int
    history: int


def encode_evidence(evidence: tuple[EvidenceRow, ...]) -> str:
    """The ``bans.evidence`` column: a compact JSON list of ``[epoch, source, position]``."""
    return json.dumps([list(row) for row in evidence], separators=(",", ":"), allow_nan=False)


def decode_evidence(text: str) -> tuple[EvidenceRow, ...]:
    """Parse the ``bans.evidence`` column; raises :class:`ValueError` when it is not what we wrote."""
    rows = json.loads(text)
    if not isinstance(rows, list):
        raise ValueError("evidence is not a JSON list")
    evidence: list[EvidenceRow] = []
    for row in rows:
        match row:
            # bool is an int subclass; a stored True is damage, not a position.
            case [int() | float() as epoch, str() as source, int() as position] if not isinstance(
                position, bool
            ) and not isinstance(epoch, bool):
                evidence.append((float(epoch), source, position))
            case _:
                raise ValueError(f"evidence entry {row!r} is not [epoch, source, position]")
    return tuple(evidence)


@dataclass(frozen=True, slots=True)
class KeyUse:
    """The latest successful login with a key: fingerprint (``SHA256:...``), event time, account, client."""

    fingerprint: str
    last_used: float
    user: str | None
    ip: str | None
