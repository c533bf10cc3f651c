"""A firewall that only logs: for the no-root demo, ``bastiond --dry-run`` and tests of the daemon.

It validates exactly like the real backends (a target they would refuse is refused here too) and keeps
an in-memory model with deadlines, so :meth:`DryRunFirewall.list` answers as a kernel set would,
expired bans included. Nothing outside the process changes.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable

from bastion_guard.actions.base import BanElement, BanListing
from bastion_guard.actions.targets import BanTarget, Network, collapse, normalize, parse_network, parse_targets

log = logging.getLogger(__name__)


class DryRunFirewall:
    """Logs each change it would make; ``clock`` (monotonic seconds) is injectable for tests."""

    name = "dry-run"
    max_timeout_secs = 3650 * 86400.0  # as nftables: the model should not clamp what the default backend keeps

    def __init__(self, *, netns: str | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.netns = netns  # accepted so the daemon can pass the same options to every backend; unused
        self._clock = clock
        self._deadlines: dict[BanTarget, float] = {}
        self.allowlist: list[Network] = []

    def __repr__(self) -> str:
        return f"DryRunFirewall(bans={len(self._deadlines)})"

    def start(self, allow: Iterable[str] = ()) -> None:
        """Log the setup that a real backend would do."""
        self.set_allowlist(allow)
        log.info("dry-run firewall: would create the ban sets and chains (nothing is changed)")

    def set_allowlist(self, networks: Iterable[str]) -> None:
        """Remember the allowlist and log it."""
        self.allowlist = collapse(parse_network(text) for text in networks)
        log.info("dry-run firewall: would allow %s", ", ".join(map(str, self.allowlist)) or "nothing")

    def restore(self, elements: Iterable[BanElement]) -> None:
        """Replace the model's bans."""
        bans = normalize(elements, self.max_timeout_secs)
        now = self._clock()
        self._deadlines = {target: now + timeout for target, timeout in bans.items()}
        log.info("dry-run firewall: would restore %d ban(s)", len(bans))

    def ban(self, elements: Iterable[BanElement]) -> None:
        """Add or re-time bans in the model, logging each."""
        now = self._clock()
        for target, timeout in normalize(elements, self.max_timeout_secs).items():
            self._deadlines[target] = now + timeout
            log.info("dry-run firewall: would ban %s for %.0f s", target, timeout)

    def unban(self, targets: Iterable[str]) -> None:
        """Drop bans from the model, logging each one that was there."""
        for target in parse_targets(targets):
            if self._deadlines.pop(target, None) is not None:
                log.info("dry-run firewall: would unban %s", target)

    def list(self) -> BanListing:
        """The model's live bans with seconds left; expired ones are forgotten, as the kernel would."""
        now = self._clock()
        self._deadlines = {t: deadline for t, deadline in self._deadlines.items() if deadline > now}
        return [(target, float(math.floor(deadline - now))) for target, deadline in self._deadlines.items()]

    def stop(self) -> None:
        """Nothing to release."""
        log.info("dry-run firewall: stopped (%d ban(s) in the model)", len(self._deadlines))

    def remove(self) -> None:
        """Forget everything."""
        self._deadlines.clear()
        self.allowlist = []
