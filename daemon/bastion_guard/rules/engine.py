"""The rules engine: events in, decisions out. Pure: no I/O, no clock, no locks.

Everything runs on *event* time (the time written in the log line), so replaying a log yields exactly
the decisions that following it live would have; the caller owns the clock and passes it in only to
expire state (:meth:`Engine.sweep`).

Memory is the constraint that shapes the data: a botnet spray can put a million addresses in flight, so
each tracked key holds one flat list ``[epoch, source, position, (pid,) ...]`` of at most ``count``
entries, and keys whose newest entry has left the window are swept away.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from bastion_guard.decisions import Decision, Evidence, Verdict
from bastion_guard.durations import format_duration
from bastion_guard.events import Event, Kind, Outcome
from bastion_guard.rules.allowlist import ALWAYS_ALLOWED, NetworkSet
from bastion_guard.rules.counts import EngineCounts, RuleCounts, portable, rule_fingerprint
from bastion_guard.rules.spec import Action, CountMode, KeyBy, Network, RuleSet, RuleSpec, Source
from bastion_guard.rules.window import (
    SOURCE_SLOTS,
    Window,
    distinct_values,
    evidence,
    new_window,
    pack,
    trim,
    user_hash,
)

_NO_DECISIONS: tuple[Decision, ...] = ()
_SWEEP_INTERVAL_SECS = 60.0
SWEEP_INTERVAL_SECS = _SWEEP_INTERVAL_SECS  # what sweep() adds to its epoch for the next one (see next_sweep)
# Every Event field the engine reads (and so every field its decisions can depend on). The native replay
# builds its events with only these; tests/unit/test_engine_fields.py holds the engine to this list.
ENGINE_FIELDS = frozenset({"epoch", "kind", "ip", "user", "pid", "repeat", "source", "position"})
_DEFAULT_MAX_KEYS = 2_000_000
_PREFIX_CACHE_LIMIT = 1 << 16


@dataclass(slots=True)
class RuleStats:
    """Counters of one rule, for ``bastionctl test`` and metrics."""

    events: int = 0
    decisions: int = 0
    allowlisted: int = 0
    while_banned: int = 0


@dataclass(slots=True)
class _Rule:
    """A rule compiled for the hot path."""

    spec: RuleSpec
    key_of: Callable[[Event], str | None]
    stride: int
    networks: NetworkSet | None
    outside: NetworkSet | None
    users: frozenset[str] | None = None  # spec.matcher.users, hoisted for the hot path
    bans: bool = False  # spec.action is Action.BAN, hoisted for the hot path
    filtered: bool = False  # any of users / networks / outside is set
    windows: dict[str, Window] = field(default_factory=dict)
    quiet: dict[str, float] = field(default_factory=dict)  # alert rules: key -> silent until (event time)
    stats: RuleStats = field(default_factory=RuleStats)


def _passes_filters(rule: _Rule, event: Event) -> bool:
    """The optional user and network conditions of a rule's ``match``."""
    users = rule.users
    if users is not None and event.user not in users:
        return False
    ip = event.ip
    networks = rule.networks
    if networks is not None and (ip is None or not networks.contains(ip)):
        return False
    outside = rule.outside
    return outside is None or (ip is not None and not outside.contains(ip))


class Engine:
    """Feed events in log order with :meth:`feed`; it returns the decisions they caused.

    ``extra_allowed`` adds networks that are never banned (the daemon passes the host's own addresses).
    ``history`` maps ``(rule, target)`` to ``(offences, last ban epoch)`` and lets growing bans survive a
    restart when the caller persists it.
    """

    def __init__(
        self,
        ruleset: RuleSet,
        extra_allowed: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network] = (),
        history: dict[tuple[str, str], tuple[int, float]] | None = None,
        max_keys: int = _DEFAULT_MAX_KEYS,
    ) -> None:
        self._allowed = NetworkSet((*ruleset.allowlisted_networks(), *ALWAYS_ALLOWED, *extra_allowed))
        self._max_keys = max_keys
        self._history = history if history is not None else {}
        self._active: dict[str, float] = {}  # banned target -> expiry (event time)
        self._sources: dict[str, int] = {}
        self._source_names: list[str] = []
        self._prefix_cache: dict[tuple[str, int], str] = {}
        self._rules: list[_Rule] = [self._compile(spec, ruleset) for spec in ruleset.rules]
        self._by_kind: dict[Kind, list[_Rule]] = {}
        for rule in self._rules:
            if rule.spec.source is Source.EVENTS:
                for kind in rule.spec.matcher.kinds:
                    self._by_kind.setdefault(kind, []).append(rule)
        self._recidive = [rule for rule in self._rules if rule.spec.source is Source.BANS]
        self._resetting = [rule for rule in self._rules if rule.spec.reset_on_success]
        self._next_sweep = 0.0

    @property
    def stats(self) -> dict[str, RuleStats]:
        """Counters per rule name."""
        return {rule.spec.name: rule.stats for rule in self._rules}

    @property
    def counted_kinds(self) -> frozenset[Kind]:
        """The kinds :meth:`feed` does more with than :meth:`advance`: an event of any other kind only
        moves the sweep clock, so a caller holding it in another form may call :meth:`advance` instead."""
        kinds = set(self._by_kind)
        if self._resetting:
            kinds.add(Kind.AUTH_SUCCESS)
        return frozenset(kinds)

    @property
    def next_sweep(self) -> float:
        """The event time from which the next event sweeps: ``now + SWEEP_INTERVAL_SECS`` of the last sweep."""
        return self._next_sweep

    def advance(self, epoch: float) -> None:
        """What :meth:`feed` does for an event of a kind outside :attr:`counted_kinds` at ``epoch``."""
        if epoch >= self._next_sweep:
            self.sweep(epoch)

    @property
    def tracked_keys(self) -> int:
        """How many keys all rules are counting right now."""
        return sum(len(rule.windows) for rule in self._rules)

    def forget_ban(self, target: str) -> None:
        """An operator lifted the ban of ``target``: count its events again from now on."""
        self._lift_ban(target)

    def export_counts(self, *, portable_only: bool = False) -> EngineCounts:
        """The counts in progress and the bans in effect, for :meth:`import_counts` in a reloaded engine, or
        (``portable_only``) in one of another process."""
        return EngineCounts(tuple(self._source_names), {
            rule.spec.name: RuleCounts(
                rule_fingerprint(rule.spec), {key: window.tolist() for key, window in rule.windows.items()},
                dict(rule.quiet),
            )
            for rule in self._rules if not portable_only or portable(rule.spec)
        }, dict(self._active))

    def import_counts(self, counts: EngineCounts) -> int:
        """Take over the counts of every rule that still counts as it did (same name, same fingerprint), before
        the first event is fed; returns how many keys were taken. Malformed windows are left out."""
        sources = [self._source_index(name) for name in counts.sources]  # the saved index -> this engine's
        taken = 0
        for rule in self._rules:
            saved = counts.rules.get(rule.spec.name)
            if saved is None or saved.fingerprint != rule_fingerprint(rule.spec):
                continue
            for key, entries in saved.windows.items():
                window = _rebased(entries, rule.stride, sources)
                if window is not None:
                    rule.windows[key] = window
                    taken += 1
            rule.quiet.update(saved.quiet)
        for target, until in counts.active.items():
            self._active[target] = max(self._active.get(target, 0.0), until)
        return taken

    def allowlisted(self, target: str) -> bool:
        """Whether ``target`` (an address or network) is in, or overlaps, what this engine never bans."""
        return self._allowed.contains(target)

    def active_bans(self) -> dict[str, float]:
        """Targets banned by this engine and their expiry (event time)."""
        return dict(self._active)

    def feed(self, event: Event) -> tuple[Decision, ...]:
        """Count ``event`` against every rule that matches it; return the decisions it caused."""
        epoch = event.epoch
        if epoch >= self._next_sweep:
            self.sweep(epoch)
        kind = event.kind
        if kind is Kind.AUTH_SUCCESS and self._resetting:
            self._reset(event)
        rules = self._by_kind.get(kind)
        if rules is None:
            return _NO_DECISIONS
        decisions: list[Decision] | None = None
        count = self._count
        for rule in rules:
            found = count(rule, event)
            if found:
                if decisions is None:
                    decisions = []
                decisions.extend(found)
        return _NO_DECISIONS if decisions is None else tuple(decisions)

    def sweep(self, now: float) -> None:
        """Forget counts that have left their window and bans that have expired, as of event time ``now``."""
        self._next_sweep = now + _SWEEP_INTERVAL_SECS
        self._sweep_rules(self._rules, now)
        expired = [target for target, expires in self._active.items() if expires <= now]
        for target in expired:
            del self._active[target]

    def _sweep_rules(self, rules: list[_Rule], now: float) -> None:
        """The per-rule half of :meth:`sweep` (the native engine sweeps its rules itself, Python the rest)."""
        for rule in rules:
            self._forget_stale_windows(rule, now - rule.spec.window_secs)
            quiet = rule.quiet
            for key in [key for key, until in quiet.items() if until <= now]:
                del quiet[key]
            self._enforce_cap(rule)

    def _forget_stale_windows(self, rule: _Rule, cutoff: float) -> None:
        """Forget the windows of ``rule`` whose newest entry is older than ``cutoff``."""
        windows = rule.windows
        stale = [key for key, entries in windows.items() if entries[-rule.stride] < cutoff]
        for key in stale:
            del windows[key]

    # --- counting -------------------------------------------------------------------------------------

    def _count(self, rule: _Rule, event: Event) -> list[Decision] | None:
        # Hot path (every counted event): cheap checks first, the window last.
        if rule.filtered and not _passes_filters(rule, event):
            return None
        key = rule.key_of(event)
        if key is None:
            return None
        rule.stats.events += 1
        # A banned key cannot be banned again, and an alert does not repeat within its window: both are
        # skipped until then (in replay the events still arrive; live, the firewall drops them).
        silenced = self._active if rule.bans else rule.quiet
        until = silenced.get(key)
        if until is not None:
            if event.epoch < until:
                rule.stats.while_banned += 1
                return None
            del silenced[key]
        # pack() and _source_index() inlined for a source already seen: this runs for every counted event.
        index = self._sources.get(event.source)
        if index is None:
            index = self._source_index(event.source)
        return self._count_window(rule, key, event, float(event.position * SOURCE_SLOTS + index))

    def _count_window(self, rule: _Rule, key: str, event: Event, reference: float) -> list[Decision] | None:
        """Add ``event`` to the window of ``key``; decide when the window holds ``count`` of them."""
        spec = rule.spec
        mode = spec.count_mode
        epoch = event.epoch
        if mode is CountMode.EVENTS:
            entry: tuple[float, ...] = (epoch, reference)
        elif mode is CountMode.CONNECTIONS:
            entry = (epoch, reference, -1.0 if event.pid is None else float(event.pid))
        else:
            entry = (epoch, reference, user_hash(event.user))
        windows = rule.windows
        window = windows.get(key)
        stride = rule.stride
        if window is None:
            window = windows[key] = new_window(entry)
        else:
            if mode is CountMode.CONNECTIONS and event.pid is not None and window[-1] == entry[2]:
                return None  # another line of a connection that already counted
            if mode is CountMode.DISTINCT_USERS:
                _forget_user(window, entry[2])
            window.extend(entry)
            trim(window, stride, epoch - spec.window_secs)
        entries = len(window) // stride
        reached = distinct_values(window, stride, 2) if mode is CountMode.DISTINCT_USERS else entries
        if reached + event.repeat - 1 < spec.count:
            return None
        del windows[key]
        found = evidence(window, stride, self._source_names)
        return self._conclude(
            rule, key, kind=event.kind, epoch=event.epoch, user=event.user, count=reached + event.repeat - 1,
            found=found,
        )

    def _conclude(
        self, rule: _Rule, key: str, *, kind: Kind, epoch: float, user: str | None, count: int,
        found: tuple[Evidence, ...],
    ) -> list[Decision]:
        """A window of ``rule`` reached its count: the decision, and what the recidive rules make of a ban.
        Shared by both counting paths (here, and the native engine's thresholds)."""
        decision = self._decide(rule, key, kind=kind, epoch=epoch, user=user, count=count, found=found)
        if decision is None:
            return []
        if decision.verdict is Verdict.BAN:
            return [decision, *self._count_ban(decision)]
        return [decision]

    def _count_ban(self, ban: Decision) -> list[Decision]:
        """Feed a ban to the recidive rules (rules with ``source: bans``)."""
        decisions = []
        for rule in self._recidive:
            matcher = rule.spec.matcher
            if matcher.rules is not None and ban.rule not in matcher.rules:
                continue
            if ban.rule == rule.spec.name:
                continue
            synthetic = Event(
                ban.epoch, 0, None, "bastion-guard", None, Kind.AUTH_FAILURE, Outcome.FAILURE,
                ban.target, None, ban.user, source=f"ban:{ban.rule}", position=0,
            )
            reference = pack(0, self._source_index(synthetic.source))
            window = rule.windows.get(ban.target)
            if window is None:
                window = rule.windows[ban.target] = new_window((ban.epoch, reference))
            else:
                window.extend((ban.epoch, reference))
                trim(window, 2, ban.epoch - rule.spec.window_secs)
            rule.stats.events += 1
            if len(window) // 2 < rule.spec.count:
                continue
            del rule.windows[ban.target]
            found = evidence(window, 2, self._source_names)
            self._lift_ban(ban.target)  # the longer recidive ban replaces the shorter one
            decision = self._decide(
                rule, ban.target, kind=synthetic.kind, epoch=ban.epoch, user=ban.user, count=len(found), found=found
            )
            if decision is not None:
                decisions.append(decision)
        return decisions

    def _decide(
        self, rule: _Rule, key: str, *, kind: Kind, epoch: float, user: str | None, count: int,
        found: tuple[Evidence, ...],
    ) -> Decision | None:
        spec = rule.spec
        target = key if spec.key is not KeyBy.IP_USER else key.split(" ", 1)[0]
        if spec.key is not KeyBy.USER and self._allowed.contains(target):
            rule.stats.allowlisted += 1
            return None
        rule.stats.decisions += 1
        what = f"{count} x {kind.value if spec.source is Source.EVENTS else 'bans'}"
        window = f" within {format_duration(spec.window_secs)}" if spec.window_secs else ""
        if spec.action is Action.ALERT or spec.ban is None:
            if spec.window_secs:
                self._set_quiet(rule, key, epoch + spec.window_secs)
            return Decision(
                Verdict.ALERT, spec.name, target, epoch, None, count, 0, what + window, found, user=user
            )
        history_key = (spec.name, target)
        previous = self._history.get(history_key)
        offence = 1
        if previous is not None and epoch - previous[1] < spec.ban.forget_after_secs:
            offence = previous[0] + 1
        self._history[history_key] = (offence, epoch)
        duration = spec.ban.duration_for(offence)
        self._extend_ban(target, epoch + duration)
        reason = what + window + (f"; offence {offence}" if offence > 1 else "")
        return Decision(
            Verdict.BAN, spec.name, target, epoch, duration, count, offence, reason, found, user=user
        )

    # --- the silences: where _decide and _count_ban leave their outcome (the native engine keeps its own) --

    def _extend_ban(self, target: str, until: float) -> None:
        """Ban rules skip ``target`` until ``until`` (or later, if an earlier ban says so)."""
        self._active[target] = max(self._active.get(target, 0.0), until)

    def _lift_ban(self, target: str) -> None:
        self._active.pop(target, None)

    def _set_quiet(self, rule: _Rule, key: str, until: float) -> None:
        """The alert rule ``rule`` stays silent for ``key`` until ``until``."""
        rule.quiet[key] = until

    def _reset(self, event: Event) -> None:
        for rule in self._resetting:
            key = rule.key_of(event)
            if key is not None:
                rule.windows.pop(key, None)

    # --- compilation and helpers ------------------------------------------------------------------------

    def _compile(self, spec: RuleSpec, ruleset: RuleSet) -> _Rule:
        matcher = spec.matcher
        networks, outside = filter_networks(spec, ruleset)
        return _Rule(
            spec=spec,
            key_of=self._key_function(spec),
            stride=2 if spec.count_mode is CountMode.EVENTS else 3,
            networks=NetworkSet(networks) if networks else None,
            outside=NetworkSet(outside) if outside else None,
            users=matcher.users,
            bans=spec.action is Action.BAN,
            filtered=bool(matcher.users is not None or networks or outside),
        )

    def _key_function(self, spec: RuleSpec) -> Callable[[Event], str | None]:
        prefix_of = self._prefix
        v4, v6 = spec.ipv4_prefix, spec.ipv6_prefix
        if spec.key is KeyBy.USER:
            return lambda event: event.user
        if spec.key is KeyBy.IP_USER:

            def ip_user(event: Event) -> str | None:
                ip = event.ip
                if ip is None or event.user is None:
                    return None
                return f"{prefix_of(ip, v4, v6)} {event.user}"

            return ip_user

        def ip_key(event: Event) -> str | None:
            ip = event.ip
            if ip is None:
                return None
            if ":" in ip:
                return prefix_of(ip, v4, v6) if v6 < 128 else ip
            return ip if v4 == 32 else prefix_of(ip, v4, v6)

        return ip_key

    def _prefix(self, ip: str, v4: int, v6: int) -> str:
        """``2001:db8:1:2:3::4`` with a /64 to ``2001:db8:1:2::/64`` (cached)."""
        length = v6 if ":" in ip else v4
        cache_key = (ip, length)
        cached = self._prefix_cache.get(cache_key)
        if cached is None:
            cached = str(ipaddress.ip_network(f"{ip}/{length}", strict=False))
            if len(self._prefix_cache) >= _PREFIX_CACHE_LIMIT:
                self._prefix_cache.clear()
            self._prefix_cache[cache_key] = cached
        return cached

    def _source_index(self, source: str) -> int:
        index = self._sources.get(source)
        if index is None:
            index = self._sources[source] = len(self._source_names)
            self._source_names.append(source)
        return index

    def _enforce_cap(self, rule: _Rule) -> None:
        """Keep memory bounded under any input: past ``max_keys``, forget the oldest tenth."""
        table = rule.windows
        if len(table) > self._max_keys:
            for key in list(table)[: len(table) // 10]:
                del table[key]


def _rebased(entries: list[float], stride: int, sources: list[int]) -> Window | None:
    """Saved entries as a window whose evidence references use this engine's source indexes; None if they are
    not whole entries or point at a source that was not saved."""
    if not entries or len(entries) % stride:
        return None
    window = new_window(tuple(entries))
    for index in range(1, len(window), stride):
        position, source = divmod(int(window[index]), SOURCE_SLOTS)
        if not 0 <= source < len(sources):
            return None
        window[index] = pack(position, sources[source])
    return window


def filter_networks(spec: RuleSpec, ruleset: RuleSet) -> tuple[tuple[Network, ...], tuple[Network, ...]]:
    """The networks of a rule's ``networks`` and ``outside`` conditions, allowlists named in them expanded."""
    matcher = spec.matcher
    networks = (*matcher.networks, *(n for name in matcher.network_lists for n in ruleset.allowlist(name)))
    outside = (*matcher.outside, *(n for name in matcher.outside_lists for n in ruleset.allowlist(name)))
    return networks, outside


def _forget_user(window: Window, name_hash: float) -> None:
    """Drop an earlier entry of the same user, so each name counts once and its newest line is kept."""
    for index in range(0, len(window), 3):
        if window[index + 2] == name_hash:
            del window[index : index + 3]
            return
