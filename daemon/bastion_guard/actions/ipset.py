"""The ipset + iptables backend, for hosts without nftables: ``ipset restore`` batches on stdin.

Layout and atomicity are described in :mod:`~bastion_guard.actions.ipset_script`. Differences from the
nftables backend that callers may notice: timeouts are whole seconds (rounded up) and at most
~24.8 days (longer bans are clamped, with a warning); a batch given to :meth:`IpsetFirewall.ban` is
applied line by line, so a failure (a full set) can leave the lines before it applied.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from bastion_guard.actions import ipset_script
from bastion_guard.actions.base import ActionError, BanElement, BanListing
from bastion_guard.actions.ipset_script import IpsetLayout
from bastion_guard.actions.runner import Runner, ToolError
from bastion_guard.actions.targets import collapse, normalize, parse_network, parse_targets, render_target

log = logging.getLogger(__name__)

_IPTABLES = {4: ("iptables", "iptables-restore"), 6: ("ip6tables", "ip6tables-restore")}
_WAIT = ["-w", "10"]  # wait for the xtables lock instead of failing while another tool holds it


class IpsetFirewall:
    """Bans in ``hash:net`` ipsets with per-element timeouts, dropped from our own iptables chain."""

    name = "ipset"
    max_timeout_secs = ipset_script.MAX_TIMEOUT_SECS

    def __init__(
        self,
        *,
        netns: str | None = None,
        prefix: str = "bastion_guard",
        chain: str = "BASTION_GUARD",
        hooks: Iterable[str] = ipset_script.HOOKS,
        maxelem: int = ipset_script.DEFAULT_MAXELEM,
        timeout_secs: float = 60.0,
    ) -> None:
        self.layout = IpsetLayout(prefix=prefix, chain=chain, hooks=tuple(hooks), maxelem=maxelem)
        self.runner = Runner(netns=netns, timeout_secs=timeout_secs)

    def __repr__(self) -> str:
        return f"IpsetFirewall(prefix={self.layout.prefix!r}, netns={self.runner.netns!r})"

    def start(self, allow: Iterable[str] = ()) -> None:
        """Create missing sets, (re)write our chain, jump to it from INPUT/FORWARD once, set the allowlist."""
        networks = collapse(parse_network(text) for text in allow)
        self._require_all()
        existing = set(self.runner.run(["ipset", "list", "-n"], what="ipset list -n").split())
        ours = [self.layout.ban_set(v) for v in (4, 6)] + [self.layout.allow_set(v) for v in (4, 6)]
        script = ipset_script.render_create(self.layout, [name for name in ours if name not in existing])
        if script:
            self._ipset(script, "create ipsets")
        self._ipset(ipset_script.render_replace_allow(self.layout, networks), "set ipset allowlist")
        for version, (tool, restore) in _IPTABLES.items():
            chain = ipset_script.render_chain(self.layout, version)
            self.runner.run([restore, *_WAIT, "--noflush"], stdin=chain, what=f"{restore} (chain {self.layout.chain})")
            for hook in self.layout.hooks:
                self._ensure_jump(tool, hook)
        log.info("ipset: sets and chain %s ready, %d allowlisted network(s)", self.layout.chain, len(networks))

    def set_allowlist(self, networks: Iterable[str]) -> None:
        """Fill fresh allow sets and swap them in (per family)."""
        allow = collapse(parse_network(text) for text in networks)
        self._ipset(ipset_script.render_replace_allow(self.layout, allow), "set ipset allowlist")

    def restore(self, elements: Iterable[BanElement]) -> None:
        """Fill fresh ban sets and swap them in: each family's set changes atomically."""
        bans = normalize(elements, self.max_timeout_secs)
        self._ipset(ipset_script.render_replace_bans(self.layout, bans), "restore ipset ban sets")
        log.info("ipset: restored %d ban(s)", len(bans))

    def ban(self, elements: Iterable[BanElement]) -> None:
        """Add or re-time a batch (``add -exist`` replaces the timeout of an element already there)."""
        bans = normalize(elements, self.max_timeout_secs)
        if bans:
            self._ipset(ipset_script.render_ban(self.layout, bans), f"ban {len(bans)} target(s)")

    def unban(self, targets: Iterable[str]) -> None:
        """Delete a batch; absent targets are fine (``del -exist``)."""
        networks = parse_targets(targets)
        if networks:
            self._ipset(ipset_script.render_unban(self.layout, networks), f"unban {len(networks)} target(s)")

    def list(self) -> BanListing:
        """``(target, seconds left)`` from ``ipset save`` of both ban sets."""
        self.runner.require("ipset", "ipset")
        found: BanListing = []
        for version in (4, 6):
            name = self.layout.ban_set(version)
            out = self.runner.run(["ipset", "save", name], what=f"ipset save {name}")
            found.extend((render_target(network), left) for network, left in ipset_script.parse_save(out, name))
        return found

    def stop(self) -> None:
        """Nothing to release: sets and rules stay, and with them the bans."""
        log.info("ipset: leaving sets and chain %s in place", self.layout.chain)

    def remove(self) -> None:
        """Remove our jumps, chain and sets (uninstall); whatever is already gone is skipped."""
        self._require_all()
        for tool, _ in _IPTABLES.values():
            for hook in self.layout.hooks:
                while self._try([tool, *_WAIT, "-D", hook, "-j", self.layout.chain]):
                    pass  # a jump inserted twice (by hand, or by an old version) goes too
            self._try([tool, *_WAIT, "-F", self.layout.chain])
            self._try([tool, *_WAIT, "-X", self.layout.chain])
        for version in (4, 6):
            for name in (self.layout.ban_set(version), self.layout.allow_set(version)):
                self._try(["ipset", "destroy", name])

    # ------------------------------------------------------------------------------------------ internals

    def _require_all(self) -> None:
        self.runner.require("ipset", "ipset")
        for tool, restore in _IPTABLES.values():
            self.runner.require(tool, "iptables")
            self.runner.require(restore, "iptables")

    def _ensure_jump(self, tool: str, hook: str) -> None:
        """Insert ``-j CHAIN`` at the top of ``hook`` unless it is there (``-C`` exits 1 when absent)."""
        if not self._try([tool, *_WAIT, "-C", hook, "-j", self.layout.chain]):
            self.runner.run([tool, *_WAIT, "-I", hook, "1", "-j", self.layout.chain], what=f"{tool} -I {hook}")

    def _try(self, argv: Sequence[str]) -> bool:
        """Run a command whose failure is an answer (absent rule, chain or set), not an error."""
        try:
            self.runner.run(argv)
        except ToolError:
            return False
        return True

    def _ipset(self, script: str, what: str) -> None:
        self.runner.require("ipset", "ipset")
        try:
            self.runner.run(["ipset", "restore"], stdin=script, what=what)
        except ToolError as exc:
            if "does not exist" in exc.stderr:
                raise ActionError(f"{what}: our ipsets are missing: start() creates them ({exc.stderr})") from None
            raise
