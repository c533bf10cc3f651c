"""``ipset restore`` and ``iptables-restore`` input for the ipset backend; pure, no I/O.

Kernel objects, per family (``4`` shown; ``6`` is the same with ``family inet6`` and ip6tables)::

    ipset:    bastion_guard-ban4   hash:net family inet timeout 0 maxelem 1048576   # per-element timeouts
              bastion_guard-allow4 hash:net family inet maxelem 65536
    iptables: -N BASTION_GUARD
              -A BASTION_GUARD -m set --match-set bastion_guard-allow4 src -j RETURN
              -A BASTION_GUARD -m set --match-set bastion_guard-ban4 src -j DROP
              -I INPUT 1 -j BASTION_GUARD     (and FORWARD)

Our own chain, left with ``RETURN``, gives the allowlist the same reach as in the nftables backend:
it exempts a source from our bans, never from the administrator's rules (an ``ACCEPT`` in INPUT would
skip them). ``hash:net`` holds addresses and networks side by side, nested ones included.

``ipset restore`` applies line by line and is not a transaction; replacing a whole set is made atomic
by filling a temporary set and ``swap``-ping it in, so readers never see it half full or empty.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from bastion_guard.actions.base import ActionError
from bastion_guard.actions.targets import BanTarget, Network, render_target, target_version

MAX_TIMEOUT_SECS = 2_147_483.0  # ipset 7.17: "out of range 0-2147483"; 0 would mean "for ever"
DEFAULT_MAXELEM = 1 << 20  # ipset's default of 65,536 is too small for a botnet's worth of bans
_ALLOW_MAXELEM = 1 << 16
HOOKS = ("INPUT", "FORWARD")
_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,22}")  # leaves room for "-allow6-tmp" within 31 characters
_CHAIN = re.compile(r"[A-Z][A-Z0-9_]{0,27}")
_FAMILY = {4: "inet", 6: "inet6"}


@dataclass(frozen=True, slots=True)
class IpsetLayout:
    """Names of our sets and chain, and the built-in chains that jump to it."""

    prefix: str = "bastion_guard"
    chain: str = "BASTION_GUARD"
    hooks: tuple[str, ...] = HOOKS
    maxelem: int = DEFAULT_MAXELEM

    def __post_init__(self) -> None:
        if not _PREFIX.fullmatch(self.prefix):
            raise ActionError(f"invalid ipset name prefix: {self.prefix!r}")
        if not _CHAIN.fullmatch(self.chain):
            raise ActionError(f"invalid iptables chain name: {self.chain!r}")
        if not self.hooks or any(hook not in HOOKS for hook in self.hooks) or len(set(self.hooks)) != len(self.hooks):
            raise ActionError(f"hooks must be a non-empty subset of {list(HOOKS)}, not {list(self.hooks)}")
        if not 1024 <= self.maxelem <= 1 << 26:
            raise ActionError(f"maxelem {self.maxelem} out of range (1024..{1 << 26})")

    def ban_set(self, version: int) -> str:
        """The ban set of IP ``version``."""
        return f"{self.prefix}-ban{version}"

    def allow_set(self, version: int) -> str:
        """The allow set of IP ``version``."""
        return f"{self.prefix}-allow{version}"


def ipset_seconds(seconds: float) -> int:
    """Whole seconds for ipset, rounded up (a ban is never cut short), never 0 (which means for ever)."""
    return max(1, math.ceil(seconds - 1e-9))


def _create(name: str, version: int, maxelem: int, timeout: bool) -> str:
    options = " timeout 0" if timeout else ""
    return f"create {name} hash:net family {_FAMILY[version]} maxelem {maxelem}{options} -exist"


def render_create(layout: IpsetLayout, missing: Iterable[str]) -> str:
    """Create those of our four sets named in ``missing`` (existing ones keep their settings and contents)."""
    wanted = set(missing)
    lines: list[str] = []
    for version in _FAMILY:
        if layout.ban_set(version) in wanted:
            lines.append(_create(layout.ban_set(version), version, layout.maxelem, timeout=True))
        if layout.allow_set(version) in wanted:
            lines.append(_create(layout.allow_set(version), version, _ALLOW_MAXELEM, timeout=False))
    return "\n".join(lines) + "\n" if lines else ""


def render_replace_allow(layout: IpsetLayout, allow: Sequence[Network]) -> str:
    """Fill temporary allow sets and swap them in, one family at a time."""
    parts = []
    for version in _FAMILY:
        items = [f"{render_target(n)}" for n in allow if n.version == version]
        parts.append(_swap_in(layout.allow_set(version), version, _ALLOW_MAXELEM, False, items))
    return "".join(parts)


def render_replace_bans(layout: IpsetLayout, bans: Mapping[BanTarget, float]) -> str:
    """Fill temporary ban sets with ``bans`` and swap them in, one family at a time."""
    parts = []
    for version in _FAMILY:
        items = [f"{target} timeout {ipset_seconds(t)}" for target, t in bans.items()
                 if target_version(target) == version]
        parts.append(_swap_in(layout.ban_set(version), version, layout.maxelem, True, items))
    return "".join(parts)


def _swap_in(name: str, version: int, maxelem: int, timeout: bool, items: list[str]) -> str:
    tmp = f"{name}-tmp"
    lines = [_create(tmp, version, maxelem, timeout), f"flush {tmp}"]
    lines.extend(f"add {tmp} {item}" for item in items)
    lines.extend((f"swap {tmp} {name}", f"destroy {tmp}"))
    return "\n".join(lines) + "\n"


def render_ban(layout: IpsetLayout, bans: Mapping[BanTarget, float]) -> str:
    """``add ... timeout N -exist``: adds, or replaces the timeout of an element that is there."""
    return "".join(
        f"add {layout.ban_set(target_version(target))} {target} timeout {ipset_seconds(t)} -exist\n"
        for target, t in bans.items()
    )


def render_unban(layout: IpsetLayout, targets: Iterable[BanTarget]) -> str:
    """``del ... -exist``: an absent element is no error."""
    return "".join(f"del {layout.ban_set(target_version(target))} {target} -exist\n" for target in targets)


def render_chain(layout: IpsetLayout, version: int) -> str:
    """``iptables-restore --noflush`` input that (re)writes our chain; declaring it flushes it first."""
    return (
        "*filter\n"
        f":{layout.chain} - [0:0]\n"
        f"-A {layout.chain} -m set --match-set {layout.allow_set(version)} src -j RETURN\n"
        f"-A {layout.chain} -m set --match-set {layout.ban_set(version)} src -j DROP\n"
        "COMMIT\n"
    )


def parse_save(payload: str, set_name: str) -> list[tuple[Network, float]]:
    """``(network, seconds left)`` from ``ipset save NAME``; ``timeout 0`` (for ever) becomes ``inf``."""
    found: list[tuple[Network, float]] = []
    for line in payload.splitlines():
        fields = line.split()
        if len(fields) < 3 or fields[0] != "add" or fields[1] != set_name:
            continue
        try:
            network = ipaddress.ip_network(fields[2])
        except ValueError:
            raise ActionError(f"ipset save {set_name}: unexpected element {fields[2]!r}") from None
        left = math.inf
        if "timeout" in fields[3:]:
            seconds = int(fields[fields.index("timeout", 3) + 1])
            left = float(seconds) if seconds else math.inf
        found.append((network, left))
    return found
