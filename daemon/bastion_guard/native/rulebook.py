"""The rule set as the native counting engine takes it: written once, read by ``native/src/rulebook.rs``.

Only what counting needs crosses over (kinds, key, prefixes, count mode, count, window, ban or alert,
user and network conditions, reset on success). Names, ban policies and allowlists stay in Python, which
decides. Rules that count bans (``source: bans``, recidive) are not described: they are fed from bans,
which are rare, and stay with :class:`~bastion_guard.rules.Engine`.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Sequence

from bastion_guard.events import Kind
from bastion_guard.rules.engine import filter_networks
from bastion_guard.rules.spec import Action, CountMode, KeyBy, Network, RuleSet, RuleSpec, Source

_KEY_CODES = {KeyBy.IP: 0, KeyBy.USER: 1, KeyBy.IP_USER: 2}
_MODE_CODES = {CountMode.EVENTS: 0, CountMode.CONNECTIONS: 1, CountMode.DISTINCT_USERS: 2}
# kinds mask, key, IPv4 prefix, IPv6 prefix, count mode, count, window, ban, reset on success
_RULE = struct.Struct("<Qqqqqqdqq")
_INT = struct.Struct("<q")
_NETWORK = struct.Struct("<qq16s")
_NOT_SET = -1
_INT64_MAX = (1 << 63) - 1
MAX_KIND_CODES = 64  # the engine's kinds mask is 64 bits


def kind_codes(native_kinds: Sequence[Kind]) -> tuple[Kind, ...]:
    """The engine's kind codes: the library's kinds first (their record codes), then every other
    :class:`Kind` (events only the Python parser produces, fed through ``bgn_engine_feed``)."""
    rest = [kind for kind in Kind if kind not in native_kinds]
    return (*native_kinds, *rest)


def counts_natively(spec: RuleSpec) -> bool:
    """Whether the native engine counts this rule (every rule fed from events; recidive stays in Python)."""
    return spec.source is Source.EVENTS


def unported(ruleset: RuleSet, codes: Sequence[Kind]) -> str | None:
    """Why the native engine cannot count this rule set with Python's rules beside it, or ``None``."""
    if len(codes) > MAX_KIND_CODES:
        return f"{len(codes)} event kinds, the native engine takes {MAX_KIND_CODES}"
    for spec in ruleset.rules:
        if not counts_natively(spec) and spec.reset_on_success:
            # A success would have to reset a window on both sides of the library boundary.
            return f"rule {spec.name!r} counts bans and resets on success"
    return None


def describe(specs: Iterable[RuleSpec], ruleset: RuleSet, codes: Sequence[Kind]) -> bytes:
    """The description of ``specs`` (rules the native engine counts), in the order the engine numbers them."""
    code_of = {kind: code for code, kind in enumerate(codes)}
    parts: list[bytes] = []
    rules = 0
    for spec in specs:
        rules += 1
        mask = 0
        for kind in spec.matcher.kinds:
            mask |= 1 << code_of[kind]
        parts.append(
            _RULE.pack(
                mask, _KEY_CODES[spec.key], spec.ipv4_prefix, spec.ipv6_prefix, _MODE_CODES[spec.count_mode],
                min(spec.count, _INT64_MAX), spec.window_secs, spec.action is Action.BAN, spec.reset_on_success,
            )
        )
        parts.append(_users(spec.matcher.users))
        networks, outside = filter_networks(spec, ruleset)
        parts.append(_networks(networks))
        parts.append(_networks(outside))
    return _INT.pack(rules) + b"".join(parts)


def _users(users: frozenset[str] | None) -> bytes:
    if users is None:
        return _INT.pack(_NOT_SET)
    names = [user.encode("utf-8", "surrogatepass") for user in sorted(users)]
    return _INT.pack(len(names)) + b"".join(_INT.pack(len(name)) + name for name in names)


def _networks(networks: Sequence[Network]) -> bytes:
    """An empty condition is no condition (``NetworkSet(...) if networks else None`` in the engine)."""
    if not networks:
        return _INT.pack(_NOT_SET)
    return _INT.pack(len(networks)) + b"".join(
        _NETWORK.pack(
            4 if isinstance(network, ipaddress.IPv4Network) else 6, network.prefixlen,
            int(network.network_address).to_bytes(16, "big"),
        )
        for network in networks
    )
