"""nft scripts for the ``inet bastion_guard`` table, rendered as text for ``nft -f -``; pure, no I/O.

A script given to ``nft -f`` is one kernel transaction: all of it applies or none does. The layout::

    table inet bastion_guard {
      set allow4 { type ipv4_addr; flags interval; }      # never dropped by *our* chains
      set allow6 { type ipv6_addr; flags interval; }
      set ban4   { type ipv4_addr; flags timeout; }       # single addresses, each with a kernel timeout
      set ban6   { type ipv6_addr; flags timeout; }
      set ban6_64 { type ipv6_addr; flags timeout; }      # one set per prefix length in use, holding
                                                          # network addresses, created on first use
      chain input { type filter hook input priority -5; policy accept;
        ip saddr @allow4 accept
        ip6 saddr @allow6 accept
        ip saddr @ban4 counter drop
        ip6 saddr @ban6 counter drop
        ip6 saddr & ffff:ffff:ffff:ffff:: @ban6_64 counter drop }
      chain forward { ...the same, for a bastion that routes or runs containers... }
    }

Why hash sets per prefix length, not one interval set per family: nft 1.0.6 loads every element of a
table's interval sets before any element change in that table, and deletes from an interval set cost
O(set size) each. With 100,000 bans that is ~1 s for any single ban and ~60 s to delete 500 (measured
in a namespace, see ``bench/bench_firewall.py``). Hash sets stay in the milliseconds, and nested bans
(an address inside a banned /64) need no merging: each is its own element with its own timeout.
The allow sets are small and hand-written, so they stay interval sets.

Priority -5 runs before the distribution's filter chains (0). Our ``accept`` ends only our chain, so
the allowlist never overrides the administrator's own drops (nftables wiki, "Configuring chains").
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from bastion_guard.actions.base import ActionError
from bastion_guard.actions.targets import BanTarget, Network, render_target, split_target

SetKey: TypeAlias = tuple[int, int]
"""``(IP version, prefix length)``: which ban set holds a network."""
Elements: TypeAlias = list[tuple[Network, float]]
"""``(network, seconds left)`` pairs read back from a set."""

HOST_KEYS: tuple[SetKey, ...] = ((4, 32), (6, 128))
_HOST_KEY = {False: HOST_KEYS[0], True: HOST_KEYS[1]}  # by "is it IPv6?"
ALLOW_SETS = {4: "allow4", 6: "allow6"}
_FAMILY = {4: ("ip", "ipv4_addr"), 6: ("ip6", "ipv6_addr")}
HOOKS = ("input", "forward")
# Elements per `add element` statement. nft parses a 10,000-element statement in ~40 ms; smaller
# statements keep nft's parser memory flat on a 100,000-element restore, and all of them still go
# into the same script, hence the same transaction.
CHUNK = 5000
# The placeholder timeout of the "make sure it exists" add before a delete (see render_update).
_ENSURE_TIMEOUT = "1s"
MAX_TIMEOUT_SECS = 3650 * 86400.0  # nft 1.0.6 refuses single time values past ~2^32 ms; 10 years is plenty
_TABLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}")
_BAN_SET_NAME = re.compile(r"ban([46])(?:_([1-9][0-9]{0,2}))?")


@dataclass(frozen=True, slots=True)
class Layout:
    """Where our objects live: the table name, the chains' hooks and their priority."""

    table: str = "bastion_guard"
    hooks: tuple[str, ...] = HOOKS
    priority: int = -5

    def __post_init__(self) -> None:
        if not _TABLE_NAME.fullmatch(self.table):
            raise ActionError(f"invalid nftables table name: {self.table!r}")
        unknown = [hook for hook in self.hooks if hook not in HOOKS]
        if unknown or not self.hooks or len(set(self.hooks)) != len(self.hooks):
            raise ActionError(f"hooks must be a non-empty subset of {list(HOOKS)}, not {list(self.hooks)}")
        if not -150 < self.priority < 150:  # stay clear of conntrack (-200) and raw/mangle territory
            raise ActionError(f"chain priority {self.priority} out of range (-149..149)")


def set_key(target: BanTarget) -> SetKey:
    """The ban set a target belongs in."""
    if "/" not in target:  # a host, the common case: no need to split
        return _HOST_KEY[":" in target]
    version, prefixlen, _ = split_target(target)
    return version, prefixlen


def set_name(key: SetKey) -> str:
    """``ban4``/``ban6`` for single addresses, ``ban<version>_<prefix length>`` for networks."""
    version, prefixlen = key
    return f"ban{version}" if key in HOST_KEYS else f"ban{version}_{prefixlen}"


def parse_set_name(name: str) -> SetKey | None:
    """The key a ban set's name stands for, or None for any other name."""
    match = _BAN_SET_NAME.fullmatch(name)
    if match is None:
        return None
    version = int(match[1])
    width = 32 if version == 4 else 128
    if match[2] is None:
        return version, width
    prefixlen = int(match[2])
    return (version, prefixlen) if prefixlen < width else None


def format_timeout(seconds: float) -> str:
    """An nft time value, rounded *up* to whole milliseconds (``90`` -> ``1m30s``, ``1.5`` -> ``1s500ms``).

    Split into units because nft refuses a single number past 2^32 ms. Written out unit by unit rather
    than as a loop over the units (0.74 -> 0.62 µs a call here): a restore formats one timeout per ban.
    """
    millis = max(1, math.ceil(seconds * 1000 - 1e-6))
    secs, millis = divmod(millis, 1000)
    minutes, secs = divmod(secs, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    text = f"{days}d" if days else ""
    if hours:
        text += f"{hours}h"
    if minutes:
        text += f"{minutes}m"
    if secs:
        text += f"{secs}s"
    if millis:
        text += f"{millis}ms"
    return text


def render_setup(layout: Layout, prefix_keys: Iterable[SetKey], allow: Sequence[Network]) -> str:
    """Create what is missing, rewrite our chains' rules and the allowlist; existing bans are kept.

    ``add`` of an existing table, set or chain with the same definition is a no-op in nft, which is
    what makes this idempotent; ``flush chain`` before the rules keeps them from piling up.
    ``prefix_keys`` are the network ban sets that already exist (their rules are rewritten too).
    """
    t = f"inet {layout.table}"
    lines = [f"add table {t}"]
    for version, (_, addr_type) in _FAMILY.items():
        lines.append(f"add set {t} {ALLOW_SETS[version]} {{ type {addr_type}; flags interval; }}")
    keys = sorted({*HOST_KEYS, *prefix_keys})
    lines.extend(_declare_set(layout, key) for key in keys)
    for hook in layout.hooks:
        lines.append(f"add chain {t} {hook} {{ type filter hook {hook} priority {layout.priority}; policy accept; }}")
        lines.append(f"flush chain {t} {hook}")
        for version, (match, _) in _FAMILY.items():
            lines.append(f"add rule {t} {hook} {match} saddr @{ALLOW_SETS[version]} accept")
        lines.extend(_drop_rule(layout, hook, key) for key in keys)
    lines.extend(_allowlist_lines(layout, allow))
    return "\n".join(lines) + "\n"


def render_new_sets(layout: Layout, keys: Iterable[SetKey]) -> list[str]:
    """Statements creating network ban sets for new prefix lengths, with their drop rules (appended
    after the allow rules, which always come first)."""
    lines: list[str] = []
    for key in sorted(keys):
        lines.append(_declare_set(layout, key))
        lines.extend(_drop_rule(layout, hook, key) for hook in layout.hooks)
    return lines


def render_allowlist(layout: Layout, allow: Sequence[Network]) -> str:
    """Replace the allow sets' contents (``allow`` must already be collapsed: no overlaps)."""
    return "\n".join(_allowlist_lines(layout, allow)) + "\n"


def _allowlist_lines(layout: Layout, allow: Sequence[Network]) -> list[str]:
    lines: list[str] = []
    for version, name in ALLOW_SETS.items():
        lines.append(f"flush set inet {layout.table} {name}")
        lines.extend(_statements("add", layout.table, name, (render_target(n) for n in allow if n.version == version)))
    return lines


def render_restore(
    layout: Layout, existing: Iterable[SetKey], new: Iterable[SetKey], bans: Mapping[BanTarget, float]
) -> str:
    """Flush every ban set, create the ``new`` ones, and add ``bans``: one transaction."""
    lines = [f"flush set inet {layout.table} {set_name(key)}" for key in sorted(existing)]
    lines.extend(render_new_sets(layout, new))
    lines.extend(_add_bans(layout, bans))
    return "\n".join(lines) + "\n"


def render_update(
    layout: Layout, new: Iterable[SetKey], delete: Iterable[BanTarget], add: Mapping[BanTarget, float]
) -> str:
    """Create the ``new`` sets, delete ``delete``, then add ``add`` with their timeouts: one transaction.

    nft 1.0.6 fails a whole transaction when it deletes an element that is not there (already expired,
    say) and has no ``destroy``; an ``add`` first makes sure each one exists, so the delete cannot miss.
    Deleting before adding is also what makes a re-ban take its new timeout exactly: a plain re-add
    with an unchanged timeout does not restart the expiry.
    """
    lines = render_new_sets(layout, new)
    for key, doomed in _by_set(delete).items():
        ensured = (f"{d} timeout {_ENSURE_TIMEOUT}" for d in doomed)
        lines.extend(_statements("add", layout.table, set_name(key), ensured))
        lines.extend(_statements("delete", layout.table, set_name(key), doomed))
    lines.extend(_add_bans(layout, add))
    return "\n".join(lines) + "\n"


def render_remove(layout: Layout) -> str:
    """Delete our table and everything in it; adding it first makes a missing table no error."""
    return f"add table inet {layout.table}\ndelete table inet {layout.table}\n"


def _declare_set(layout: Layout, key: SetKey) -> str:
    return f"add set inet {layout.table} {set_name(key)} {{ type {_FAMILY[key[0]][1]}; flags timeout; }}"


def _drop_rule(layout: Layout, hook: str, key: SetKey) -> str:
    version, prefixlen = key
    match = _FAMILY[version][0]
    if key in HOST_KEYS:
        selector = f"{match} saddr"
    else:
        mask = (ipaddress.IPv4Network if version == 4 else ipaddress.IPv6Network)((0, prefixlen)).netmask
        selector = f"{match} saddr & {mask}"
    return f"add rule inet {layout.table} {hook} {selector} @{set_name(key)} counter drop"


def _by_set(targets: Iterable[BanTarget]) -> dict[SetKey, list[str]]:
    grouped: dict[SetKey, list[str]] = {}
    for target in targets:
        version, prefixlen, address = split_target(target)
        grouped.setdefault((version, prefixlen), []).append(address)
    return grouped


def _add_bans(layout: Layout, bans: Mapping[BanTarget, float]) -> Iterator[str]:
    grouped: dict[SetKey, list[str]] = {}
    for target, timeout in bans.items():
        key = set_key(target)
        address = target if key in HOST_KEYS else split_target(target)[2]  # a host is its address
        group = grouped.get(key)
        if group is None:
            group = grouped[key] = []
        group.append(f"{address} timeout {format_timeout(timeout)}")
    for key in sorted(grouped):
        yield from _statements("add", layout.table, set_name(key), grouped[key])


def _statements(verb: str, table: str, name: str, items: Iterable[str]) -> Iterator[str]:
    """``<verb> element inet T S { a, b, ... }``, CHUNK items per statement, none for no items."""
    chunk: list[str] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == CHUNK:
            yield f"{verb} element inet {table} {name} {{ {', '.join(chunk)} }}"
            chunk = []
    if chunk:
        yield f"{verb} element inet {table} {name} {{ {', '.join(chunk)} }}"


def parse_sets(payload: str, table: str) -> dict[SetKey, Elements]:
    """The ban sets of ``inet <table>`` in ``nft -j list table`` output: ``{key: [(network, seconds left)]}``.

    Only sets of that table count: nft 1.0.6 ignores the table in ``list sets table ...`` and prints
    every table's sets, so the output is filtered here whatever command produced it. ``inf`` marks an
    element without timeout (added by hand). The kernel reports whole seconds.
    """
    try:
        document = json.loads(payload)
    except ValueError as exc:
        raise ActionError(f"nft -j list table: unreadable JSON: {exc}") from None
    found: dict[SetKey, Elements] = {}
    for entry in document.get("nftables", []):
        description = entry.get("set")
        if not isinstance(description, dict):
            continue
        if description.get("family") != "inet" or description.get("table") != table:
            continue
        key = parse_set_name(str(description.get("name", "")))
        if key is None:
            continue
        found[key] = [(_network(item, key), _seconds_left(item)) for item in description.get("elem", [])]
    return found


def _seconds_left(item: Any) -> float:
    if isinstance(item, dict) and isinstance(item.get("elem"), dict):
        elem = item["elem"]
        if "expires" in elem:
            return float(elem["expires"])
        if "timeout" in elem:
            return float(elem["timeout"])
    return math.inf


def _network(item: Any, key: SetKey) -> Network:
    value = item["elem"].get("val") if isinstance(item, dict) and "elem" in item else item
    if not isinstance(value, str):
        raise ActionError(f"nft -j list table: unexpected element {value!r} in {set_name(key)}")
    try:
        # strict=False: an element with host bits (added by hand) still means the masked network
        return ipaddress.ip_network(f"{value}/{key[1]}", strict=False)
    except ValueError as exc:
        raise ActionError(f"nft -j list table: unexpected element {value!r} in {set_name(key)}: {exc}") from None
