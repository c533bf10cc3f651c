"""What a rule file says, validated into frozen dataclasses (compiled once, read on every event).

A rule document::

    kind: rule
    name: sshd-bruteforce
    description: Password and key guessing against sshd.
    match:
      kinds: [auth_failure, max_auth_exceeded]
      users: [root]                 # optional: only these user names
      networks: [10.0.0.0/8]        # optional: only clients in these networks (CIDR or allowlist names)
      outside: [trusted]            # optional: only clients outside these networks / allowlists
    key: ip                         # ip | user | ip+user
    ipv6_prefix: 64                 # IPv6 clients are grouped by network
    threshold: {count: 5, window_secs: 10m}
    count: events                   # events | connections | distinct_users
    reset_on_success: true          # a successful login from the key clears its count
    action: ban                     # ban | alert
    ban: {duration_secs: 10m, factor: 2, max_secs: 7d, forget_after_secs: 30d}

A recidive rule counts bans instead of events (``source: bans``). An allowlist document::

    kind: allowlist
    name: trusted
    networks: [127.0.0.0/8, "::1/128", 10.20.0.0/16]
    files: [/etc/bastion-guard/allowlist.txt]     # one CIDR per line, '#' comments
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass

from bastion_guard.errors import Location
from bastion_guard.events import Kind

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Action(enum.StrEnum):
    """What a rule does when its threshold is crossed."""

    BAN = "ban"
    ALERT = "alert"


class KeyBy(enum.StrEnum):
    """What a rule counts per."""

    IP = "ip"
    USER = "user"
    IP_USER = "ip+user"


class CountMode(enum.StrEnum):
    """What one step of a rule's counter is."""

    EVENTS = "events"  # every matching event (each repeat of a folded line too)
    CONNECTIONS = "connections"  # at most one per sshd connection: handshake noise logs several lines
    DISTINCT_USERS = "distinct_users"  # user enumeration: distinct names tried


class Source(enum.StrEnum):
    """Where a rule's input comes from."""

    EVENTS = "events"
    BANS = "bans"  # recidive: the bans other rules issued


@dataclass(frozen=True, slots=True)
class BanPolicy:
    """How long a ban lasts, and how it grows for repeat offenders: ``duration * factor ** (n - 1)``."""

    duration_secs: float
    factor: float = 1.0
    max_secs: float | None = None
    forget_after_secs: float = 30 * 86400.0

    def duration_for(self, offence: int) -> float:
        """Ban length for the ``offence``-th ban (1-based) within ``forget_after_secs``."""
        seconds = self.duration_secs * self.factor ** max(offence - 1, 0)
        if self.max_secs is not None:
            seconds = min(seconds, self.max_secs)
        return seconds


@dataclass(frozen=True, slots=True)
class Matcher:
    """Which events a rule looks at."""

    kinds: frozenset[Kind]
    users: frozenset[str] | None = None
    networks: tuple[Network, ...] = ()
    outside: tuple[Network, ...] = ()
    network_lists: frozenset[str] = frozenset()  # allowlists named as allowlist:NAME in networks
    outside_lists: frozenset[str] = frozenset()  # allowlists named as allowlist:NAME in outside
    rules: frozenset[str] | None = None  # recidive: bans of these rules only


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """One validated rule."""

    name: str
    description: str
    source: Source
    matcher: Matcher
    key: KeyBy
    ipv4_prefix: int
    ipv6_prefix: int
    count: int
    window_secs: float
    count_mode: CountMode
    reset_on_success: bool
    action: Action
    ban: BanPolicy | None
    location: Location


@dataclass(frozen=True, slots=True)
class AllowlistSpec:
    """One named allowlist."""

    name: str
    networks: tuple[Network, ...]
    location: Location


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Every rule and allowlist loaded from a rules directory, in file order."""

    rules: tuple[RuleSpec, ...]
    allowlists: tuple[AllowlistSpec, ...]
    files: tuple[str, ...]

    def allowlisted_networks(self) -> tuple[Network, ...]:
        """All networks of all allowlists: never banned."""
        return tuple(network for allowlist in self.allowlists for network in allowlist.networks)

    def allowlist(self, name: str) -> tuple[Network, ...]:
        """The networks of the allowlist called ``name`` (empty if there is none)."""
        for allowlist in self.allowlists:
            if allowlist.name == name:
                return allowlist.networks
        return ()
