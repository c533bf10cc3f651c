"""Logins (and attempts) by people who have departed: alert decisions, as plain data.

The daemon calls :func:`departed_logins` on every batch's key-related events. A departed person is one
whose ``departs`` time is at or before the event's own time (event time, not the clock: a replayed log
decides the same way). They are recognised by their bastion account (a success, a failure, an invalid
user line) or by one of their key fingerprints (``Accepted publickey`` under another account, or a KRL
refusal: ``Authentication key ... revoked by file``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bastion_guard.decisions import Decision, Evidence, Verdict
from bastion_guard.events import Event, Kind
from bastion_guard.keys.inventory import Inventory, Person

RULE = "departed-user-login"
WATCHED_KINDS = frozenset({Kind.AUTH_SUCCESS, Kind.AUTH_FAILURE, Kind.INVALID_USER, Kind.KEY_REVOKED})


@dataclass(frozen=True, slots=True)
class DepartedIndex:
    """People with a departure time, by account and by fingerprint (built once per inventory)."""

    by_account: dict[str, Person]
    by_fingerprint: dict[str, Person]

    @classmethod
    def of(cls, inventory: Inventory, fingerprints: Mapping[str, Iterable[str]] | None = None) -> DepartedIndex:
        """Index the people of ``inventory`` that have a ``departs`` time: their inline keys, plus
        ``fingerprints`` by person name (keys found in their authorized_keys, or revoked by an offboarding)."""
        leaving = [person for person in inventory.people if person.departs is not None]
        by_fingerprint = {key.fingerprint: person for person in leaving for key in person.keys}
        for person in leaving:
            for fingerprint in (fingerprints or {}).get(person.name, ()):
                by_fingerprint.setdefault(fingerprint, person)
        return cls({person.account: person for person in leaving}, by_fingerprint)

    def who(self, event: Event) -> Person | None:
        """The departed person this event is about, if any."""
        person = self.by_account.get(event.user or "") or self.by_fingerprint.get(event.fingerprint or "")
        if person is None or person.departs is None or event.epoch < person.departs:
            return None
        return person


def departed_logins(events: Iterable[Event], index: DepartedIndex) -> list[Decision]:
    """One ALERT decision per event in which a departed person logs in or tries to."""
    decisions = []
    for event in events:
        if event.kind not in WATCHED_KINDS:
            continue
        person = index.who(event)
        if person is None:
            continue
        what = "logged in" if event.kind is Kind.AUTH_SUCCESS else f"tried to log in ({event.kind.value})"
        key = f" with {event.fingerprint}" if event.fingerprint else ""
        decisions.append(Decision(
            Verdict.ALERT, RULE, person.account, event.epoch, None, 1, 1,
            f"departed user {person.name} {what} as {event.user or person.account}{key} from {event.ip or '?'}",
            (Evidence(event.epoch, event.source, event.position),), user=person.account,
        ))
    return decisions
