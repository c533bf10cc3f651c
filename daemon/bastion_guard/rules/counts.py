"""Counts in progress, carried over a reload and a restart.

Without them an attacker's failures so far would start again at zero whenever bastiond reloads its rules or
restarts, and four guesses before a routine restart plus four after would never reach a limit of five. A
rule's windows are carried over only to a rule of the same name whose :func:`rule_fingerprint` is the same:
what an entry means (which events count, per what key, how many in which window) has not changed. The ban
policy, the description and the file a rule sits in may change freely.

Entries hold event times and packed evidence references, so they mean the same in another process as long
as the source names come along (``sources``). A distinct-users rule's entries hold :func:`hash` of names,
which differs between processes: those are carried over a reload but not written for a restart
(``portable``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from bastion_guard.rules.spec import CountMode, RuleSpec

FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class RuleCounts:
    """One rule's windows (key -> flat entries, oldest key first) and alert quiet periods (key -> until)."""

    fingerprint: str
    windows: dict[str, list[float]]
    quiet: dict[str, float]


@dataclass(frozen=True, slots=True)
class EngineCounts:
    """Every rule's counts, by rule name, the source names their evidence references point into, and the
    bans in effect (target -> until, event time), during which a target's stray lines are not counted."""

    sources: tuple[str, ...]
    rules: dict[str, RuleCounts]
    active: dict[str, float]

    @property
    def keys(self) -> int:
        """How many keys are being counted, over all rules."""
        return sum(len(rule.windows) for rule in self.rules.values())


def rule_fingerprint(spec: RuleSpec) -> str:
    """What a rule's window entries mean, as canonical text: equal for rules that count the same way."""
    matcher = spec.matcher
    meaning: dict[str, Any] = {
        "source": spec.source.value, "kinds": sorted(kind.value for kind in matcher.kinds),
        "users": None if matcher.users is None else sorted(matcher.users),
        "networks": [str(network) for network in matcher.networks], "outside": [str(n) for n in matcher.outside],
        "network_lists": sorted(matcher.network_lists), "outside_lists": sorted(matcher.outside_lists),
        "rules": None if matcher.rules is None else sorted(matcher.rules),
        "key": spec.key.value, "prefixes": [spec.ipv4_prefix, spec.ipv6_prefix], "count": spec.count,
        "window_secs": spec.window_secs, "count_mode": spec.count_mode.value, "action": spec.action.value,
    }
    return orjson.dumps(meaning, option=orjson.OPT_SORT_KEYS).decode()


def portable(spec: RuleSpec) -> bool:
    """Whether a rule's entries mean the same in another process (see the module's docstring)."""
    return spec.count_mode is not CountMode.DISTINCT_USERS


def encode(counts: EngineCounts) -> bytes:
    """The stored form (orjson keeps each rule's key order: the oldest keys are the first to go at the cap)."""
    return orjson.dumps({
        "version": FORMAT_VERSION, "sources": list(counts.sources), "active": counts.active,
        "rules": {name: {"fingerprint": rule.fingerprint, "windows": rule.windows, "quiet": rule.quiet}
                  for name, rule in counts.rules.items()},
    })


def decode(stored: bytes) -> EngineCounts:
    """Counts from :func:`encode`; :class:`ValueError` for anything else (another version, damage)."""
    try:
        data = orjson.loads(stored)
        if data.get("version") != FORMAT_VERSION:
            raise ValueError(f"counts in format {data.get('version')!r}, not {FORMAT_VERSION}")
        sources = tuple(str(name) for name in data["sources"])
        rules = {
            str(name): RuleCounts(
                str(rule["fingerprint"]),
                {str(key): [float(value) for value in entries] for key, entries in rule["windows"].items()},
                {str(key): float(until) for key, until in rule["quiet"].items()},
            )
            for name, rule in data["rules"].items()
        }
        active = {str(target): float(until) for target, until in data["active"].items()}
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"unreadable counts: {error}") from error
    return EngineCounts(sources, rules, active)
