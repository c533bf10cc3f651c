"""The key lifecycle inside bastiond: departures at their time, periodic rotation, departed-login alerts.

Rotations ssh to targets and take seconds, so they run on this module's own thread, never on the
processing loop. The loop only calls :meth:`KeyLifecycle.observe` (pure, fast) per batch.

Exactly once: a departure is due when its time has passed and the ledger has no *completed* offboarding
for that person; a daemon that was down at the time finds it due at start and runs it late. A run that
failed somewhere is tried again after :data:`RETRY_SECS` (each run is idempotent and continues where the
last one stopped). A shared key is due when ``rotate_every`` has passed since its last completed
rotation (else since its key file was written), or when a rotation of it stopped half way.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bastion_guard.decisions import Decision
from bastion_guard.errors import BastionError
from bastion_guard.events import Event
from bastion_guard.keys import ledger as ledgers
from bastion_guard.keys.alerts import DepartedIndex, departed_logins
from bastion_guard.keys.audit import Audit, Emit
from bastion_guard.keys.inventory import Inventory, Person, SharedKey, load_inventory
from bastion_guard.keys.offboard import keys_of, offboard
from bastion_guard.keys.remote import Ssh
from bastion_guard.keys.rotate import rotate

log = logging.getLogger("bastion_guard.keys")
RETRY_SECS = 600.0
CHECK_EVERY_SECS = 60.0


@dataclass(frozen=True, slots=True)
class Due:
    """Work that is due: a departure or a shared key rotation."""

    person: Person | None = None
    shared_key: SharedKey | None = None


def known_hosts(inventory: Inventory, state_dir: Path) -> Path:
    """The known_hosts the bastion uses for targets: the inventory's, else ``<state_dir>/keys/known_hosts``."""
    return inventory.known_hosts or ledgers.ledger_dir(state_dir) / "known_hosts"


def due_work(inventory: Inventory, ledger: ledgers.Ledger, now: float) -> list[Due]:
    """What is due at ``now`` (pure but for the key files' modification times)."""
    work = []
    for person in inventory.people:
        if person.departs is None or person.departs > now:
            continue
        entry = ledger.offboardings.get(person.name)
        if entry is not None and entry.completed is not None:
            continue
        if entry is not None and entry.attempts and now - entry.started < RETRY_SECS * entry.attempts:
            continue
        work.append(Due(person=person))
    for key in inventory.shared_keys:
        if ledger.open_rotation(key.name) is not None:
            run = ledger.rotations[key.name]
            last_step = max([run.started, *(stamp for steps in run.steps.values() for stamp in steps.values())])
            if now - last_step >= RETRY_SECS:
                work.append(Due(shared_key=key))
            continue
        if key.rotate_every is None:
            continue
        last = ledger.last_rotated.get(key.name)
        if last is None:
            try:
                last = key.private_key.stat().st_mtime
            except OSError:
                continue  # a missing key file is reported by keys list; nothing to rotate
        if now - last >= key.rotate_every:
            work.append(Due(shared_key=key))
    return work


class KeyLifecycle:
    """Owns the inventory, the departed-login index and the scheduler thread."""

    def __init__(self, inventory: Inventory, state_dir: Path, emit: Emit | None = None, *,
                 clock: Callable[[], float] = time.time, check_every: float = CHECK_EVERY_SECS) -> None:
        self.inventory = inventory
        self._state_dir = state_dir
        self._index = DepartedIndex.of(inventory, _known_fingerprints(inventory, state_dir))
        self._audit = Audit(emit, clock=clock)
        self._clock = clock
        self._check_every = check_every
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="key lifecycle", daemon=True)

    def observe(self, events: Sequence[Event]) -> list[Decision]:
        """Alerts for departed people in ``events`` (called by the processing loop; no I/O)."""
        return departed_logins(events, self._index)

    def start(self) -> None:
        """Start the scheduler thread."""
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to stop and wait for it (a rotation in progress finishes its current step first)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=120)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self.run_due()
            except Exception:  # a bug here must not end the schedule for good, nor the daemon
                log.exception("key schedule check failed")
            self._stopping.wait(self._sleep())

    def _sleep(self) -> float:
        """Until the next departure, at most :data:`CHECK_EVERY_SECS`."""
        now = self._clock()
        upcoming = [p.departs - now for p in self.inventory.people if p.departs is not None and p.departs > now]
        return max(0.05, min([self._check_every, *upcoming]))

    def run_due(self) -> int:
        """Run everything due now, holding the ledger lock (skipped if bastionctl holds it); how many ran."""
        try:
            with ledgers.locked(self._state_dir, wait=False) as ledger:
                work = due_work(self.inventory, ledger, self._clock())
                log.debug("key schedule checked: %d due", len(work))
                ssh = Ssh(known_hosts(self.inventory, self._state_dir))
                for item in work:
                    if self._stopping.is_set():
                        break
                    if item.person is not None:
                        log.warning("departure of %s is due: offboarding", item.person.name)
                        offboard(item.person, self.inventory, ledger, ssh, self._audit, state_dir=self._state_dir,
                                 lock_account=self.inventory.lock_account, end_sessions=self.inventory.end_sessions,
                                 clock=self._clock)
                    elif item.shared_key is not None:
                        rotate(item.shared_key, self.inventory, ledger, ssh, self._audit, reason="scheduled",
                               clock=self._clock)
                return len(work)
        except BastionError as error:
            log.error("key schedule: %s", error)
            return 0


def _known_fingerprints(inventory: Inventory, state_dir: Path) -> dict[str, list[str]]:
    """Fingerprints of departing people beyond their inline keys: what their authorized_keys hold now and
    what earlier offboardings revoked (read once, at start)."""
    try:
        ledger = ledgers.read(state_dir)
    except BastionError as error:
        log.error("key ledger unreadable, departed-login alerts match accounts and inline keys only: %s", error)
        ledger = None
    found: dict[str, list[str]] = {}
    for person in inventory.people:
        if person.departs is None:
            continue
        entry = ledger.offboardings.get(person.name) if ledger is not None else None
        found[person.name] = list(entry.revoked) if entry is not None else []
        try:
            found[person.name] += [key.fingerprint for key in keys_of(person)]
        except BastionError as error:
            log.error("keys of %s not read: %s", person.name, error)
    return found


def start_key_lifecycle(keys_path: Path, state_dir: Path, emit: Emit | None = None) -> KeyLifecycle | None:
    """Load ``keys_path`` and start the schedule; None when the file is absent (the feature is off).

    An invalid file is logged and the daemon runs without the key lifecycle: a typo in keys.yaml must not
    take the bans down with it (``bastiond --check-config`` reports it before start).
    """
    try:
        inventory = load_inventory(keys_path)
    except BastionError as error:
        log.error("key lifecycle OFF, %s is invalid:\n%s", keys_path, error)
        return None
    if inventory is None:
        return None
    lifecycle = KeyLifecycle(inventory, state_dir, emit)
    lifecycle.start()
    log.info("key lifecycle on: %d people, %d shared keys, KRL %s", len(inventory.people),
             len(inventory.shared_keys), inventory.krl)
    return lifecycle
