"""The nftables backend: ``nft -f -`` with a rendered script on stdin, one transaction per call.

The table layout and the reasons for it are in :mod:`~bastion_guard.actions.nft_script`. This module
keeps the one piece of state that saves a read per call: which network ban sets (one per prefix
length) exist already, so a ban for a new prefix length creates its set and drop rules in the same
transaction as the elements.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from bastion_guard.actions import nft_script
from bastion_guard.actions.base import ActionError, BanElement, BanListing
from bastion_guard.actions.nft_script import HOST_KEYS, Elements, Layout, SetKey, set_key
from bastion_guard.actions.runner import Runner, ToolError
from bastion_guard.actions.targets import collapse, normalize, parse_network, parse_targets, render_target

log = logging.getLogger(__name__)


class NftablesFirewall:
    """Bans in the ``inet bastion_guard`` table's sets, with kernel timeouts.

    ``netns`` runs every command as ``ip netns exec NETNS nft ...`` (tests, or a bastion that keeps
    its SSH listener in a namespace). ``table``, ``hooks`` and ``priority`` change the layout. One
    process owns the table: the daemon (the CLI goes through it), so the cached list of network ban
    sets stays true.
    """

    name = "nftables"
    max_timeout_secs = nft_script.MAX_TIMEOUT_SECS

    def __init__(
        self,
        *,
        netns: str | None = None,
        table: str = "bastion_guard",
        hooks: Iterable[str] = nft_script.HOOKS,
        priority: int = -5,
        timeout_secs: float = 60.0,
    ) -> None:
        self.layout = Layout(table=table, hooks=tuple(hooks), priority=priority)
        self.runner = Runner(netns=netns, timeout_secs=timeout_secs)
        self._sets: set[SetKey] | None = None  # ban sets known to exist with their rules; None: not read yet

    def __repr__(self) -> str:
        return f"NftablesFirewall(table={self.layout.table!r}, netns={self.runner.netns!r})"

    def start(self, allow: Iterable[str] = ()) -> None:
        """Create the table, sets and chains if missing; rewrite our rules and the allowlist."""
        networks = collapse(parse_network(text) for text in allow)
        self.runner.require("nft", "nftables")
        # Network ban sets from an earlier run keep their elements; their rules are rewritten with the rest.
        existing = set(self._list_sets(terse=True) or {})
        try:
            self._nft(nft_script.render_setup(self.layout, existing, networks), "create nftables table")
        except ToolError as exc:
            if "File exists" not in exc.stderr:
                raise
            # `add set` of an existing set with another type or flags: a table from another layout.
            raise ActionError(
                f"{exc}\nhint: table inet {self.layout.table} holds a set or chain defined differently (an older "
                f"layout?); delete it (`nft delete table inet {self.layout.table}`) and start again: bans are "
                "restored from the state database"
            ) from None
        self._sets = existing | set(HOST_KEYS)
        log.info(
            "nftables: table inet %s ready (%d ban sets, %d allowlisted networks)",
            self.layout.table,
            len(self._sets),
            len(networks),
        )

    def set_allowlist(self, networks: Iterable[str]) -> None:
        """Replace the allow sets, atomically."""
        allow = collapse(parse_network(text) for text in networks)
        self._nft(nft_script.render_allowlist(self.layout, allow), "set nftables allowlist")

    def restore(self, elements: Iterable[BanElement]) -> None:
        """Flush every ban set and refill them, in one transaction."""
        bans = normalize(elements, self.max_timeout_secs)
        known = self._known()
        new = {set_key(target) for target in bans} - known
        self._nft(nft_script.render_restore(self.layout, known, new, bans), "restore nftables ban sets")
        known |= new
        log.info("nftables: restored %d ban(s)", len(bans))

    def ban(self, elements: Iterable[BanElement]) -> None:
        """Add or re-time a batch: ensure + delete + add in one transaction, so every timeout is exact."""
        bans = normalize(elements, self.max_timeout_secs)
        if not bans:
            return
        known = self._known()
        new = {set_key(target) for target in bans} - known
        # A target in a set created by this very script cannot be there yet: nothing to delete.
        doomed = [target for target in bans if set_key(target) in known]
        self._nft(nft_script.render_update(self.layout, new, doomed, bans), f"ban {len(bans)} target(s)")
        known |= new

    def unban(self, targets: Iterable[str]) -> None:
        """Delete a batch; absent targets (and targets whose set does not exist) are fine."""
        known = self._known()
        doomed = [target for target in parse_targets(targets) if set_key(target) in known]
        if doomed:
            self._nft(nft_script.render_update(self.layout, (), doomed, {}), f"unban {len(doomed)} target(s)")

    def list(self) -> BanListing:
        """``(target, seconds left)`` for every ban set, from one ``nft -j list table`` (whole seconds)."""
        sets = self._list_sets(terse=False)
        if sets is None:
            raise ActionError(f"nftables table inet {self.layout.table} does not exist: start() creates it")
        return [(render_target(network), left) for key in sorted(sets) for network, left in sets[key]]

    def stop(self) -> None:
        """Nothing to release: the table, and so the bans, stay in the kernel."""
        log.info("nftables: leaving table inet %s in place", self.layout.table)

    def remove(self) -> None:
        """Delete the table with its sets and chains (uninstall); a missing table is fine."""
        self._nft(nft_script.render_remove(self.layout), "remove nftables table")
        self._sets = None

    # ------------------------------------------------------------------------------------------ internals

    def _known(self) -> set[SetKey]:
        if self._sets is None:
            # First call without start() in this process: learn what start() made in an earlier run.
            found = self._list_sets(terse=True)
            if found is None:
                raise ActionError(f"nftables table inet {self.layout.table} does not exist: start() creates it")
            self._sets = set(found) | set(HOST_KEYS)
        return self._sets

    def _list_sets(self, terse: bool) -> dict[SetKey, Elements] | None:
        """Our ban sets with their elements (none with ``terse``); None when the table does not exist.

        The terse form lists only the sets: ``list table``, even with ``-t``, makes nft 1.0.6 load every
        element first, 0.33 s at 100,000 bans on each start of a daemon whose bans are still in the kernel;
        ``list sets`` takes 4 ms and fails the same way when the table is missing.
        """
        self.runner.require("nft", "nftables")
        what = ["-t", "list", "sets", "table"] if terse else ["list", "table"]
        argv = ["nft", "-j", *what, "inet", self.layout.table]
        try:
            out = self.runner.run(argv, what=f"list table inet {self.layout.table}")
        except ToolError as exc:
            if "Error: No such file or directory" in exc.stderr:
                return None
            raise
        return nft_script.parse_sets(out, self.layout.table)

    def _nft(self, script: str, what: str) -> None:
        self.runner.require("nft", "nftables")
        self.runner.run(["nft", "-f", "-"], stdin=script, what=what)
