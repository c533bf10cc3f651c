"""The rules engine: thresholds on event time, growing bans, recidive, allowlists, enumeration."""

from __future__ import annotations

from pathlib import Path

from bastion_guard.decisions import Decision, Verdict
from bastion_guard.events import Event, Kind, Outcome
from bastion_guard.rules import Engine, RuleSet, load_rule_files, load_rules

RULES = Path(__file__).resolve().parents[2] / "rules"


def ev(t: float, ip: str | None, kind: Kind = Kind.AUTH_FAILURE, user: str | None = "root",
       pid: int | None = None, position: int = 0) -> Event:
    """A minimal event at event time ``t``."""
    outcome = Outcome.SUCCESS if kind is Kind.AUTH_SUCCESS else Outcome.FAILURE
    return Event(t, 0, "bastion", "sshd", pid, kind, outcome, ip, 22, user, source="test", position=position)


def rules_from(tmp_path: Path, text: str) -> RuleSet:
    """A rule set from one YAML text."""
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return load_rule_files([path])


BRUTE = """
kind: rule
name: brute
match: {kinds: [auth_failure]}
threshold: {count: 3, window_secs: 60}
reset_on_success: true
action: ban
ban: {duration_secs: 100, factor: 2, max_secs: 300}
"""


def feed_all(engine: Engine, events: list[Event]) -> list[Decision]:
    """Every decision the events cause, in order."""
    return [decision for event in events for decision in engine.feed(event)]


def test_threshold_within_window_bans_with_evidence(tmp_path: Path) -> None:
    """Three failures within the window ban; the decision lists the three lines."""
    engine = Engine(rules_from(tmp_path, BRUTE))
    decisions = feed_all(engine, [ev(0, "203.0.113.1", position=1), ev(10, "203.0.113.1", position=2),
                                  ev(20, "203.0.113.1", position=3)])
    assert [(d.verdict, d.target, d.duration_secs) for d in decisions] == [(Verdict.BAN, "203.0.113.1", 100)]
    assert [e.position for e in decisions[0].evidence] == [1, 2, 3]


def test_slow_attempts_outside_window_do_not_ban(tmp_path: Path) -> None:
    """Failures spread wider than the window never add up."""
    engine = Engine(rules_from(tmp_path, BRUTE))
    assert feed_all(engine, [ev(t, "203.0.113.1") for t in (0, 50, 100, 150, 200)]) == []


def test_growing_bans_for_repeat_offenders(tmp_path: Path) -> None:
    """The second and third bans double, up to the maximum."""
    engine = Engine(rules_from(tmp_path, BRUTE))
    durations = []
    start = 0.0
    for _ in range(3):
        decisions = feed_all(engine, [ev(start + i, "203.0.113.1") for i in range(3)])
        durations.append(decisions[0].duration_secs)
        start += 1000  # after the ban has expired
    assert durations == [100, 200, 300]


def test_success_resets_and_bans_suppress_recounting(tmp_path: Path) -> None:
    """A successful login clears the count; events during a ban are not counted again."""
    engine = Engine(rules_from(tmp_path, BRUTE))
    ip = "203.0.113.1"
    events = [ev(0, ip), ev(1, ip), ev(2, ip, Kind.AUTH_SUCCESS), ev(3, ip), ev(4, ip)]
    assert feed_all(engine, events) == []
    assert len(feed_all(engine, [ev(5, ip)])) == 1
    assert feed_all(engine, [ev(6 + i, ip) for i in range(6)]) == []


def test_allowlisted_and_loopback_are_never_banned(tmp_path: Path) -> None:
    """Neither an allowlisted network nor loopback is banned, however hard it fails."""
    ruleset = rules_from(tmp_path, BRUTE + "---\nkind: allowlist\nname: admins\nnetworks: [198.51.100.0/24]\n")
    engine = Engine(ruleset)
    events = [ev(i, ip) for ip in ("198.51.100.7", "127.0.0.1", "::1") for i in range(10)]
    assert feed_all(engine, events) == []
    assert engine.stats["brute"].allowlisted > 0


def test_ipv6_clients_are_grouped_by_prefix(tmp_path: Path) -> None:
    """Three addresses of one /64 make one ban of the /64."""
    engine = Engine(rules_from(tmp_path, BRUTE))
    events = [ev(i, f"2001:db8:1:2::{i + 1}") for i in range(3)]
    assert [d.target for d in feed_all(engine, events)] == ["2001:db8:1:2::/64"]


def test_replay_is_deterministic(tmp_path: Path) -> None:
    """The same events give the same decisions, whenever they are fed."""
    events = [ev(i * 3.0, f"203.0.113.{i % 5}") for i in range(200)]
    first = feed_all(Engine(rules_from(tmp_path, BRUTE)), events)
    second = feed_all(Engine(rules_from(tmp_path, BRUTE)), events)
    assert first == second
    assert first


def test_shipped_rules_distinct_users_connections_recidive() -> None:
    """The shipped rules: user enumeration, per-connection scanner counting and recidive all fire."""
    engine = Engine(load_rules(RULES))
    enum = feed_all(engine, [ev(i, "203.0.113.9", Kind.INVALID_USER, user=f"u{i}") for i in range(4)])
    assert [(d.rule, d.target) for d in enum] == [("sshd-user-enumeration", "203.0.113.9")]
    # Three lines of one connection (same pid) count once for the scanner rule.
    lines = [ev(i, "203.0.113.10", Kind.HANDSHAKE_ERROR, user=None, pid=100) for i in range(30)]
    assert feed_all(engine, lines) == []
    connections = [ev(100 + i, "203.0.113.10", Kind.HANDSHAKE_ERROR, user=None, pid=200 + i) for i in range(10)]
    assert [d.rule for d in feed_all(engine, connections)] == ["sshd-preauth-scanner"]
    # Three bans within a day make a recidive ban.
    ip, decisions, t = "203.0.113.11", [], 1000.0
    for _ in range(3):
        decisions += feed_all(engine, [ev(t + i, ip) for i in range(5)])
        t += 20000
    assert [d.rule for d in decisions] == ["sshd-bruteforce", "sshd-bruteforce", "sshd-bruteforce", "recidive"]
    assert decisions[-1].duration_secs == 7 * 86400


def test_alert_rules() -> None:
    """A root login and a login from a public address raise alerts, not bans."""
    engine = Engine(load_rules(RULES))
    decisions = feed_all(engine, [ev(0, "10.1.2.3", Kind.AUTH_SUCCESS, user="root"),
                                  ev(1, "203.0.113.5", Kind.AUTH_SUCCESS, user="alice")])
    assert sorted((d.rule, d.verdict) for d in decisions) == [
        ("login-from-outside-trusted", Verdict.ALERT), ("root-login", Verdict.ALERT)
    ]


def test_memory_stays_bounded_by_sweeping(tmp_path: Path) -> None:
    """Keys whose events left the window are forgotten as event time moves on."""
    engine = Engine(rules_from(tmp_path, BRUTE))
    for i in range(5000):
        engine.feed(ev(i * 0.01, f"10.{i // 65536}.{i // 256 % 256}.{i % 256}"))
    assert engine.tracked_keys == 5000
    engine.feed(ev(10_000, "192.0.2.1"))
    assert engine.tracked_keys == 1
