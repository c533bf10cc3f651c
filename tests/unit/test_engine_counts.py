"""Counts in progress survive a reload and a restart: an engine split anywhere decides as one that never was."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion_guard.decisions import Decision
from bastion_guard.events import Event, Kind, Outcome
from bastion_guard.rules import Engine, RuleSet, load_rule_files, load_rules
from bastion_guard.rules.counts import EngineCounts, decode, encode

RULES = Path(__file__).resolve().parents[2] / "rules"
_ADDRESSES = ("203.0.113.1", "203.0.113.2", "198.51.100.7", "2001:db8:1:2::5", "2001:db8:1:2::6")
_KINDS = (Kind.AUTH_FAILURE, Kind.INVALID_USER, Kind.HANDSHAKE_ERROR, Kind.PREAUTH_CLOSE, Kind.AUTH_SUCCESS)


def _event(number: int, epoch: float, address: str, kind: Kind, user: str, pid: int, source: str) -> Event:
    outcome = Outcome.SUCCESS if kind is Kind.AUTH_SUCCESS else Outcome.FAILURE
    return Event(epoch, 0, "bastion", "sshd", pid, kind, outcome, address, 22, user, source=source, position=number)


events = st.lists(
    st.tuples(st.floats(0, 400), st.sampled_from(_ADDRESSES), st.sampled_from(_KINDS),
              st.sampled_from(("root", "admin", "oracle", "a b", "ubuntu")), st.integers(100, 104),
              st.sampled_from(("auth.log", "auth.log.1"))),
    max_size=120,
).map(lambda rows: [_event(n, sum(r[0] for r in rows[: n + 1]), *row[1:]) for n, row in enumerate(rows)])


def _decisions(engine: Engine, stream: list[Event]) -> list[Decision]:
    return [decision for event in stream for decision in engine.feed(event)]


def _shipped() -> RuleSet:
    return load_rules(RULES)


@settings(max_examples=150, deadline=None)
@given(stream=events, cut=st.integers(0, 120))
def test_a_reload_anywhere_decides_as_one_engine(stream: list[Event], cut: int) -> None:
    ruleset = _shipped()
    whole = _decisions(Engine(ruleset), stream)
    history: dict[tuple[str, str], tuple[int, float]] = {}  # the daemon passes its history to every engine
    first = Engine(ruleset, history=history)
    before = _decisions(first, stream[:cut])
    second = Engine(ruleset, history=history)
    second.import_counts(first.export_counts())
    assert before + _decisions(second, stream[cut:]) == whole


@settings(max_examples=150, deadline=None)
@given(stream=events, cut=st.integers(0, 120))
def test_a_restart_anywhere_decides_as_one_engine_for_rules_that_travel(stream: list[Event], cut: int) -> None:
    """Across processes (encoded, decoded) every rule but distinct-users ones carries its counts."""
    ruleset = RuleSet(tuple(r for r in _shipped().rules if r.count_mode.value != "distinct_users"), (), ())
    whole = _decisions(Engine(ruleset), stream)
    history: dict[tuple[str, str], tuple[int, float]] = {}
    first = Engine(ruleset, history=history)
    before = _decisions(first, stream[:cut])
    stored = encode(first.export_counts(portable_only=True))
    second = Engine(ruleset, history=history)
    second.import_counts(decode(stored))
    assert before + _decisions(second, stream[cut:]) == whole


def test_without_carrying_the_counts_a_restart_is_a_reset() -> None:
    """The property above is not vacuous: four failures, a restart without counts, four more: no ban."""
    ruleset = _shipped()
    stream = [_event(n, float(n), "203.0.113.9", Kind.AUTH_FAILURE, "root", 100 + n, "auth.log") for n in range(8)]
    assert _decisions(Engine(ruleset), stream[4:]) == [], "a fresh engine sees only the last four"
    carried = Engine(ruleset)
    first = Engine(ruleset)
    _decisions(first, stream[:4])
    carried.import_counts(decode(encode(first.export_counts(portable_only=True))))
    [ban] = _decisions(carried, stream[4:])
    assert ban.target == "203.0.113.9" and [e.position for e in ban.evidence] == [0, 1, 2, 3, 4]


def test_a_rule_that_now_counts_differently_starts_again(tmp_path: Path) -> None:
    def ruleset(count: int, description: str) -> RuleSet:
        path = tmp_path / "r.yaml"
        path.write_text(f"kind: rule\nname: brute\ndescription: {description}\nmatch: {{kinds: [auth_failure]}}\n"
                        f"threshold: {{count: {count}, window_secs: 60}}\naction: ban\nban: {{duration_secs: 60}}\n")
        return load_rule_files([path])

    first = Engine(ruleset(3, "one"))
    _decisions(first, [_event(n, n, "203.0.113.9", Kind.AUTH_FAILURE, "root", 1, "a") for n in range(2)])
    counts = first.export_counts()
    assert Engine(ruleset(3, "reworded")).import_counts(counts) == 1, "the description does not change counting"
    assert Engine(ruleset(4, "one")).import_counts(counts) == 0, "another count does"


@pytest.mark.parametrize("stored", [b"", b"[]", b'{"version": 99}', b'{"version": 1, "sources": [], "rules": {"r": 1}}'])
def test_damaged_counts_are_an_error_not_a_crash(stored: bytes) -> None:
    with pytest.raises(ValueError):
        decode(stored)


def test_windows_pointing_at_unknown_sources_are_left_out() -> None:
    ruleset = _shipped()
    first = Engine(ruleset)
    _decisions(first, [_event(0, 0.0, "203.0.113.9", Kind.AUTH_FAILURE, "root", 1, "auth.log")])
    counts = first.export_counts()
    broken = EngineCounts((), counts.rules, {})
    assert Engine(ruleset).import_counts(broken) == 0
