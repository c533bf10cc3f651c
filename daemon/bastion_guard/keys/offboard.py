"""Offboarding one person: revoke every key they hold on the bastion, then rotate the shared keys they
could use, auditing each step and ending with one summary record.

Revocation comes first and goes into the KRL before any authorized_keys file is touched: the KRL refuses
the key at once, on every account, whatever file it sits in. The whole run is idempotent: keys already
revoked, lines already gone and hosts already done (ledger) are skipped.
"""

from __future__ import annotations

import logging
import pwd
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bastion_guard.keys import account, authorized_keys, krl
from bastion_guard.keys.audit import Audit
from bastion_guard.keys.errors import KeyLifecycleError
from bastion_guard.keys.inventory import Inventory, Person
from bastion_guard.keys.ledger import Ledger, Offboarding, ledger_dir
from bastion_guard.keys.pubkey import PublicKey
from bastion_guard.keys.remote import Ssh
from bastion_guard.keys.rotate import Progress, RotationResult, rotate

log = logging.getLogger(__name__)


@dataclass
class OffboardResult:
    """What an offboarding did; ``failed`` counts every step that did not succeed."""

    person: str
    account: str
    revoked: list[str] = field(default_factory=list)  # fingerprints now in the KRL (this run or before)
    newly_revoked: list[str] = field(default_factory=list)
    removed_from: dict[str, int] = field(default_factory=dict)  # authorized_keys path -> lines removed
    rotations: list[RotationResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def failed(self) -> int:
        """Failed steps: revocation errors plus failed hosts."""
        return len(self.errors) + sum(rotation.failed for rotation in self.rotations)

    @property
    def rotated(self) -> int:
        """Hosts where a shared key was rotated."""
        return sum(rotation.rotated for rotation in self.rotations)

    def summary(self) -> str:
        """``USER offboarded: N keys revoked, M targets rotated, K failed``."""
        return (f"{self.person} offboarded: {len(self.revoked)} keys revoked, {self.rotated} targets rotated, "
                f"{self.failed} failed")


def default_authorized_keys(account_name: str) -> Path | None:
    """``~account/.ssh/authorized_keys``, or None when the account does not exist here."""
    try:
        return Path(pwd.getpwnam(account_name).pw_dir) / ".ssh" / "authorized_keys"
    except KeyError:
        return None


def authorized_keys_files(inventory: Inventory) -> list[Path]:
    """Every authorized_keys file the inventory knows: a departed person's key may sit in a shared account's."""
    paths: list[Path] = []
    for person in inventory.people:
        path = person.authorized_keys or default_authorized_keys(person.account)
        if path is not None and path not in paths:
            paths.append(path)
    return paths


def keys_of(person: Person) -> list[PublicKey]:
    """The person's inline keys and the keys in their authorized_keys file, each once."""
    found = {key.blob: key for key in person.keys}
    path = person.authorized_keys or default_authorized_keys(person.account)
    if path is not None:
        for key in authorized_keys.keys_in(path):
            found.setdefault(key.blob, key)
    return list(found.values())


def offboard(
    person: Person, inventory: Inventory, ledger: Ledger, ssh: Ssh, audit: Audit, *, state_dir: Path,
    lock_account: bool, end_sessions: bool, progress: Progress | None = None,
    clock: Callable[[], float] = time.time,
) -> OffboardResult:
    """Revoke, maybe lock and end sessions, rotate; record the outcome in the ledger (caller holds its lock)."""
    result = OffboardResult(person.name, person.account)
    entry = ledger.offboardings.get(person.name) or Offboarding(person.name, clock())
    entry.attempts += 1
    ledger.offboardings[person.name] = entry
    ledger.save()
    _revoke(person, inventory, audit, result, state_dir=state_dir, clock=clock)
    if progress is not None:
        progress(f"{person.name}: keys revoked on the bastion")
    _block(person, audit, result, lock_account=lock_account, end_sessions=end_sessions)
    for key in inventory.shared_keys_of(person):
        rotated = ledger.last_rotated.get(key.name)
        if ledger.open_rotation(key.name) is None and rotated is not None and rotated >= entry.started:
            # Rotated since this offboarding began: the person cannot know the live key. A re-run is a no-op.
            audit.step("shared-key-rotation", "skipped", key=key.name, person=person.name,
                       message="already rotated since this offboarding started")
            continue
        reason = f"offboarding {person.name}"
        result.rotations.append(rotate(key, inventory, ledger, ssh, audit, reason=reason, progress=progress,
                                       clock=clock))
    entry.revoked = sorted(set(entry.revoked) | set(result.revoked))
    rotation_errors = [r.error or f"{r.key}: {r.failed} host(s) failed" for r in result.rotations if r.failed]
    entry.last_error = "; ".join(result.errors + rotation_errors) or None
    if result.failed == 0:
        entry.completed = clock()
    ledger.save()
    audit.step("offboarding", "success" if result.failed == 0 else "failure", user=person.account,
               person=person.name, message=result.summary(), keys_revoked=len(result.revoked),
               targets_rotated=result.rotated, failed=result.failed)
    return result


def _revoke(person: Person, inventory: Inventory, audit: Audit, result: OffboardResult, *, state_dir: Path,
            clock: Callable[[], float]) -> None:
    keys = keys_of(person)
    if not keys:
        result.warnings.append(f"no keys known for {person.name}: nothing to revoke on the bastion")
    warning = krl.sshd_reads(inventory.krl, inventory.sshd_config)
    if warning is not None:
        result.warnings.append(warning)
        log.warning("!!! %s", warning)
        audit.step("krl-check", "failure", path=str(inventory.krl), message=warning)
    if not inventory.krl.exists():
        result.warnings.append(f"the KRL {inventory.krl} was missing (sshd refused every public key): created it")
    try:
        new = krl.revoke(inventory.krl, keys)
    except KeyLifecycleError as error:
        result.errors.append(str(error))
        audit.step("key-revoked", "failure", user=person.account, path=str(inventory.krl), message=str(error))
        return
    newly = {key.blob for key in new}
    for key in keys:
        result.revoked.append(key.fingerprint)
        if key.blob in newly:
            result.newly_revoked.append(key.fingerprint)
        audit.step("key-revoked", "success" if key.blob in newly else "skipped", user=person.account,
                   fingerprint=key.fingerprint, key_type=key.type, path=str(inventory.krl),
                   message="" if key.blob in newly else "already in the KRL")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(clock()))
    for path in authorized_keys_files(inventory):
        try:
            removed = authorized_keys.remove_keys(path, keys, ledger_dir(state_dir) / "backups", stamp)
        except KeyLifecycleError as error:
            result.errors.append(str(error))
            audit.step("authorized-keys-removed", "failure", user=person.account, path=str(path), message=str(error))
            continue
        if removed:
            result.removed_from[str(path)] = len(removed)
            audit.step("authorized-keys-removed", "success", user=person.account, path=str(path),
                       fingerprints=[key.fingerprint for key in removed])


def _block(person: Person, audit: Audit, result: OffboardResult, *, lock_account: bool, end_sessions: bool) -> None:
    steps: list[tuple[str, Callable[[], object]]] = []
    if lock_account:
        steps.append(("account-locked", lambda: account.lock_account(person.account)))
    if end_sessions:
        steps.append(("sessions-ended", lambda: account.end_sessions(person.account)))
    for action, do in steps:
        try:
            how = do()
        except KeyLifecycleError as error:
            result.errors.append(str(error))
            audit.step(action, "failure", user=person.account, message=str(error))
            continue
        audit.step(action, "success", user=person.account, **({"method": how} if isinstance(how, str) else {}))
