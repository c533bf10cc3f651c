"""``bastionctl keys list``: which fingerprint is trusted where, and when the bastion last saw it used."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from bastion_guard.keys import krl
from bastion_guard.keys.errors import KeyLifecycleError
from bastion_guard.keys.inventory import Inventory
from bastion_guard.keys.keypair import load_pair
from bastion_guard.keys.ledger import Ledger
from bastion_guard.keys.offboard import keys_of
from bastion_guard.keys.rotate import endpoints
from bastion_guard.state.records import KeyUse

STALE_AFTER_SECS = 90 * 86400.0  # a key unused this long is worth a question


@dataclass
class KeyRow:
    """One key: whose, its fingerprint, where it is trusted, its state and last use on the bastion."""

    owner: str
    kind: str  # "personal" | "shared"
    fingerprint: str
    trusted: list[str]
    state: str  # "active" | "revoked" | "departed" | "missing"
    last_used: float | None
    last_user: str | None
    last_ip: str | None
    stale: bool

    def as_json(self) -> dict[str, Any]:
        """The row for ``-o json``."""
        return asdict(self)


def key_rows(inventory: Inventory, ledger: Ledger, uses: dict[str, KeyUse], now: float) -> list[KeyRow]:
    """Every personal key (inline, in authorized_keys, or revoked by an offboarding: then only its fingerprint
    is left) and every shared key of the inventory."""
    rows = []
    for person in inventory.people:
        departed = person.departs is not None and person.departs <= now
        where = [f"bastion:{person.account}"]
        listed = set()
        for key in keys_of(person):
            state = "revoked" if krl.revoked(inventory.krl, key) else ("departed" if departed else "active")
            rows.append(_row(person.name, "personal", key.fingerprint, where, state, uses=uses, now=now))
            listed.add(key.fingerprint)
        offboarding = ledger.offboardings.get(person.name)
        for fingerprint in offboarding.revoked if offboarding is not None else ():
            if fingerprint not in listed:
                rows.append(_row(person.name, "personal", fingerprint, [], "revoked", uses=uses, now=now))
    for shared in inventory.shared_keys:
        try:
            fingerprint, state = load_pair(shared.private_key).public.fingerprint, "active"
        except KeyLifecycleError:
            fingerprint, state = "-", "missing"
        trusted = [str(endpoint) for endpoint in endpoints(inventory, shared)]
        rows.append(_row(shared.name, "shared", fingerprint, trusted, state, uses=uses, now=now))
    return rows


def _row(owner: str, kind: str, fingerprint: str, trusted: list[str], state: str, *, uses: dict[str, KeyUse],
         now: float) -> KeyRow:
    use = uses.get(fingerprint)
    last = use.last_used if use is not None else None
    stale = state == "active" and kind == "personal" and (last is None or now - last > STALE_AFTER_SECS)
    return KeyRow(owner, kind, fingerprint, trusted, state, last, use.user if use else None,
                  use.ip if use else None, stale)
