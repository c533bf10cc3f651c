"""Every active ban back into the kernel at start: one read of the state, one firewall transaction.

A restore of 100,000 bans creates a few hundred thousand short-lived objects (rows, elements, rendered
lines) that hold no reference cycles. Each 700 of them start a garbage collection of the youngest
generation, and the older ones follow; with the daemon's modules, rules and state in memory those passes
cost about as much as the validation and rendering themselves (0.35 s of 0.9 s measured). None of them
can free anything here, so the collector is paused for the restore and runs again as usual afterwards.
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import Iterator

from bastion_guard.actions.base import BanElement, Firewall
from bastion_guard.state.store import StateStore

log = logging.getLogger(__name__)


def restore_active_bans(store: StateStore, firewall: Firewall, now: float) -> int:
    """Make the firewall hold exactly the bans of ``store`` that end after ``now``; how many there are.

    Each ban gets the time it has left, so a ban outlives a restart without being extended by it.
    """
    with collector_paused():
        active = store.active_expiries(now)
        firewall.restore([BanElement(target, expires - now) for target, expires in active])
        count = len(active)
        del active  # freed before the collector runs again, so its first pass has nothing of ours to walk
    return count


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Disable the cyclic garbage collector inside the block; re-enable it after, if it was on before."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
