"""The native counting engine decides exactly what the Python engine (the reference) decides.

Differential tests: the same events through :class:`~bastion_guard.rules.Engine` and through
:class:`~bastion_guard.native.engine.NativeEngine` (counting in the Rust library, deciding in the shared
Python code) must give equal decisions (with evidence), rule stats, active bans, tracked keys and sweep
clock, under every count mode, key, prefix, filter, silence and cap (hypothesis over event sequences with
IPv4 and IPv6 clients, users, pids, repeats, time jumps and operator unbans). Whole logs through the
native replay (parser and engine in the library) and the pure-Python replay must give equal reports. The
key text of networks is held to ``ipaddress`` itself.
"""

from __future__ import annotations

import io
import ipaddress
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bastion_guard.decisions import Decision
from bastion_guard.events import Event, Kind, Outcome
from bastion_guard.native import load, replay_stream_native
from bastion_guard.native.engine import NativeEngine, unavailable
from bastion_guard.replay import Report, replay_stream
from bastion_guard.rules import Engine, RuleSet, load_rule_files, load_rules

LIBRARY, WHY = load()
pytestmark = pytest.mark.skipif(LIBRARY is None, reason=f"no native library here: {WHY}")

REFERENCE = 1795899600.0
_REPO = Path(__file__).resolve().parents[2]
_GENERATOR = _REPO / "bench" / "gen_authlog.py"
_CORPUS = _REPO / "tests" / "corpus"

# Every mode the native engine counts, with counts small enough that short sequences reach them.
EVERY_MODE = """
kind: allowlist
name: office
networks: [198.51.100.0/24, "2001:db8:ff::/48"]
---
kind: rule
name: brute
match: {kinds: [auth_failure, invalid_user, max_auth_exceeded]}
threshold: {count: 3, window_secs: 60}
reset_on_success: true
action: ban
ban: {duration_secs: 100, factor: 2, max_secs: 300}
---
kind: rule
name: net-64
match: {kinds: [auth_failure]}
ipv4_prefix: 24
ipv6_prefix: 64
threshold: {count: 4, window_secs: 120}
action: ban
ban: {duration_secs: 50}
---
kind: rule
name: scanner-48
match: {kinds: [preauth_close, handshake_error, auth_failure, preauth_disconnect]}
count: connections
ipv6_prefix: 48
threshold: {count: 3, window_secs: 90}
action: ban
ban: {duration_secs: 60, factor: 3, forget_after_secs: 400}
---
kind: rule
name: enumeration
match: {kinds: [invalid_user, auth_failure]}
count: distinct_users
threshold: {count: 3, window_secs: 200}
action: ban
ban: {duration_secs: 80}
---
kind: rule
name: ip-user
match: {kinds: [auth_failure]}
key: ip+user
threshold: {count: 2, window_secs: 30}
action: ban
ban: {duration_secs: 40}
---
kind: rule
name: ip-user-net
match: {kinds: [auth_failure, invalid_user]}
key: ip+user
ipv4_prefix: 24
ipv6_prefix: 48
threshold: {count: 2, window_secs: 45}
action: alert
---
kind: rule
name: account
match: {kinds: [auth_failure]}
key: user
threshold: {count: 3, window_secs: 100}
action: alert
---
kind: rule
name: root-login
match: {kinds: [auth_success], users: [root, "ad min"]}
threshold: {count: 1}
action: alert
---
kind: rule
name: outside-login
match: {kinds: [auth_success], outside: [10.0.0.0/8, "allowlist:office"]}
threshold: {count: 2, window_secs: 50}
action: alert
---
kind: rule
name: inside-failures
match: {kinds: [auth_failure], networks: [10.0.0.0/8, "2001:db8::/32"]}
threshold: {count: 2, window_secs: 40}
reset_on_success: true
action: alert
---
kind: rule
name: python-kinds
match: {kinds: [key_revoked, user_not_allowed]}
threshold: {count: 2, window_secs: 60}
action: ban
ban: {duration_secs: 30}
---
kind: rule
name: recidive
source: bans
threshold: {count: 2, window_secs: 1000}
action: ban
ban: {duration_secs: 500, factor: 2}
"""


def _rules(text: str) -> RuleSet:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "rules.yaml"
        path.write_text(text)
        return load_rule_files([path])


EVERY_MODE_RULES = _rules(EVERY_MODE)
SHIPPED_RULES = load_rules(_REPO / "rules")


def _both(ruleset: RuleSet, max_keys: int = 2_000_000) -> tuple[Engine, NativeEngine]:
    assert LIBRARY is not None
    return Engine(ruleset, max_keys=max_keys), NativeEngine(ruleset, LIBRARY, max_keys=max_keys)


def _event(epoch: float, kind: Kind, ip: str | None, user: str | None, pid: int | None = None, repeat: int = 1,
           position: int = 0) -> Event:  # fmt: skip
    outcome = Outcome.SUCCESS if kind is Kind.AUTH_SUCCESS else Outcome.FAILURE
    return Event(epoch, 0, "bastion", "sshd", pid, kind, outcome, ip, 22, user, repeat=repeat, source="log",
                 position=position)  # fmt: skip


def _state(engine: Engine) -> tuple[object, ...]:
    return engine.stats, engine.active_bans(), engine.tracked_keys, engine.next_sweep


# --- event sequences (hypothesis) --------------------------------------------------------------------------

_KINDS = [
    Kind.AUTH_FAILURE, Kind.AUTH_FAILURE, Kind.INVALID_USER, Kind.AUTH_SUCCESS, Kind.PREAUTH_CLOSE,
    Kind.HANDSHAKE_ERROR, Kind.MAX_AUTH_EXCEEDED, Kind.KEY_REVOKED, Kind.USER_NOT_ALLOWED, Kind.CONNECTION,
]
_ADDRESSES = [
    "203.0.113.7", "203.0.113.8", "203.0.114.9", "10.1.2.3", "198.51.100.20", "127.0.0.1",
    "2001:db8:1:2::7", "2001:db8:1:2:ffff::1", "2001:db8:1:3::7", "2001:db8:2::1", "2001:db8:ff::9", "::1",
    "fe80::1", None,
]  # fmt: skip
_USERS = ["root", "admin", "ad min", "oracle", "", "ünï", None]
_STEPS = st.one_of(
    st.floats(min_value=0, max_value=15), st.floats(min_value=0, max_value=400),
    st.floats(min_value=-120, max_value=0),  # a clock jump backwards (a host whose time was set back)
)
_EVENT = st.tuples(
    _STEPS, st.sampled_from(_KINDS), st.sampled_from(_ADDRESSES), st.sampled_from(_USERS),
    st.one_of(st.none(), st.integers(min_value=1, max_value=4)),
    st.one_of(st.just(1), st.integers(min_value=1, max_value=4)),
)
_UNBAN = st.tuples(st.just("unban"), st.sampled_from([address for address in _ADDRESSES if address]))
_STEP = st.one_of(_EVENT, _EVENT, _EVENT, _UNBAN)


def _run(engine: Engine, steps: list[tuple[object, ...]]) -> list[Decision]:
    decisions: list[Decision] = []
    epoch = 1_000.0
    for position, step in enumerate(steps):
        if step[0] == "unban":
            engine.forget_ban(str(step[1]))
            continue
        delta, kind, ip, user, pid, repeat = step
        epoch += float(delta)  # type: ignore[arg-type]
        event = _event(epoch, kind, ip, user, pid, repeat, position)  # type: ignore[arg-type]
        decisions.extend(engine.feed(event))
    return decisions


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(_STEP, max_size=120), max_keys=st.sampled_from([2, 5, 2_000_000]))
def test_same_decisions_and_state_as_the_python_engine(steps: list[tuple[object, ...]], max_keys: int) -> None:
    python, native = _both(EVERY_MODE_RULES, max_keys)
    assert _run(native, steps) == _run(python, steps)
    assert _state(native) == _state(python)


def test_the_hypothesis_rules_reach_every_kind_of_outcome() -> None:
    """The differential test above compares real work: a plain sequence bans, alerts, silences, resets,
    is allowlisted and feeds recidive on the native side."""
    steps: list[tuple[object, ...]] = [(1.0, Kind.AUTH_FAILURE, "203.0.113.50", "bob", None, 1)] * 2
    for second in range(40):
        address = ["203.0.113.7", "2001:db8:1:2::7", "198.51.100.20", "10.1.2.3"][second % 4]
        steps.append((5.0, Kind.AUTH_FAILURE, address, ["root", "admin", "oracle"][second % 3], second % 7, 1))
        if second % 9 == 0:
            steps.append((1.0, Kind.AUTH_SUCCESS, "192.0.2.1", "root", None, 1))
    python, native = _both(EVERY_MODE_RULES)
    decisions = _run(native, steps)
    assert decisions == _run(python, steps)
    assert {decision.rule for decision in decisions} >= {"brute", "ip-user", "account", "root-login", "recidive"}
    stats = native.stats
    assert stats["brute"].while_banned > 0 and stats["net-64"].allowlisted > 0
    assert _state(native) == _state(python)


# --- key text against ipaddress ------------------------------------------------------------------------------

_PREFIX_RULES: dict[tuple[str, int, int], RuleSet] = {}


def _prefix_rules(key: str, v4: int, v6: int) -> RuleSet:
    """An alert rule keyed by ``key`` with these prefixes, alerting on the first failure (cached)."""
    cache_key = (key, v4, v6)
    if cache_key not in _PREFIX_RULES:
        _PREFIX_RULES[cache_key] = _rules(
            f"kind: rule\nname: first\nmatch: {{kinds: [auth_failure]}}\nkey: {key}\n"
            f"ipv4_prefix: {v4}\nipv6_prefix: {v6}\nthreshold: {{count: 1}}\naction: alert\n"
        )
    return _PREFIX_RULES[cache_key]


def _spellings(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> st.SearchStrategy[str]:
    texts = {str(address), address.exploded, str(address).upper(), address.exploded.upper()}
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        texts.add(f"::ffff:{address.ipv4_mapped}")
    return st.sampled_from(sorted(texts))


@settings(max_examples=400, deadline=None)
@given(
    text=st.one_of(st.ip_addresses(v=6), st.ip_addresses(v=4)).flatmap(_spellings),
    v4=st.integers(min_value=8, max_value=32),
    v6=st.integers(min_value=16, max_value=128),
    key=st.sampled_from(["ip", "ip+user"]),
)
@example(text="::ffff:1.2.3.4", v4=24, v6=96, key="ip")
@example(text="1:0:0:1:0:0:0:1", v4=24, v6=128, key="ip+user")
@example(text="2001:db8::1%eth0", v4=24, v6=64, key="ip")
@example(text="2001:DB8:0:0:1:0:0:1", v4=24, v6=64, key="ip")
def test_network_keys_are_the_text_ipaddress_gives(text: str, v4: int, v6: int, key: str) -> None:
    python, native = _both(_prefix_rules(key, v4, v6))
    event = _event(5_000.0, Kind.AUTH_FAILURE, text, "root")
    decisions = native.feed(event)
    assert decisions == python.feed(event)
    if not decisions:  # a network overlapping loopback (always allowlisted): the key never shows
        assert native.stats["first"].allowlisted == 1
        return
    (decision,) = decisions
    length = v6 if ":" in text else v4
    network = str(ipaddress.ip_network(f"{text}/{length}", strict=False))
    full = (":" in text and v6 == 128) or (":" not in text and v4 == 32)
    assert decision.target == (text if key == "ip" and full else network)


@pytest.mark.parametrize("text", ["1.2.3", "01.2.3.4", "1::2::3", "2001:db8::g", "host.example", "fe80::1%"])
def test_an_address_ipaddress_refuses_fails_the_same_way(text: str) -> None:
    python, native = _both(_prefix_rules("ip", 24, 64))
    event = _event(5_000.0, Kind.AUTH_FAILURE, text, "root")
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6"):
        python.feed(event)
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6"):
        native.feed(event)


# --- whole logs ------------------------------------------------------------------------------------------


def _generated_log(log_format: str, lines: int, seed: int) -> bytes:
    return subprocess.run(
        [sys.executable, str(_GENERATOR), "--lines", str(lines), "--format", log_format, "--seed", str(seed),
         "--ipv6-share", "0.3", "--out", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip


def _logs() -> list[object]:
    logs = [
        (f"generated {fmt} seed {seed}", _generated_log(fmt, 20_000, seed))
        for fmt in ("rfc3339", "traditional")
        for seed in (11, 12)
    ]
    logs += [(path.name, path.read_bytes()) for path in sorted(_CORPUS.glob("*.log"))]
    return [pytest.param(data, id=name) for name, data in logs]


def _report_fields(report: Report) -> tuple[object, ...]:
    return (
        report.lines, dict(report.events_by_kind), dict(report.events_by_outcome), dict(report.statuses),
        report.unmatched, report.decisions, report.rule_stats,
    )


@pytest.mark.parametrize("ruleset", [SHIPPED_RULES, EVERY_MODE_RULES], ids=["shipped rules", "every mode"])
@pytest.mark.parametrize("data", _logs())
def test_same_report_as_the_reference_replay(data: bytes, ruleset: RuleSet) -> None:
    assert LIBRARY is not None
    reference = replay_stream(io.BytesIO(data), "src", REFERENCE, ruleset)
    native = replay_stream_native(io.BytesIO(data), "src", REFERENCE, ruleset, library=LIBRARY)
    assert native.parser.endswith("rules counted natively")
    assert _report_fields(native) == _report_fields(reference)


def test_the_generated_log_makes_decisions_natively() -> None:
    """The report equality above compares real decisions, bans and alerts both, many of them."""
    assert LIBRARY is not None
    data = _generated_log("rfc3339", 20_000, 11)
    report = replay_stream_native(io.BytesIO(data), "src", REFERENCE, EVERY_MODE_RULES, library=LIBRARY)
    assert len(report.decisions) > 100
    assert {decision.verdict.value for decision in report.decisions} == {"ban", "alert"}


# --- which path runs, and why ----------------------------------------------------------------------------

RESETTING_RECIDIVE = """
kind: rule
name: brute
match: {kinds: [auth_failure]}
threshold: {count: 3, window_secs: 60}
action: ban
ban: {duration_secs: 100}
---
kind: rule
name: recidive
source: bans
threshold: {count: 2, window_secs: 1000}
reset_on_success: true
action: ban
ban: {duration_secs: 500}
"""


def test_a_rule_set_the_library_cannot_count_runs_on_the_python_engine() -> None:
    assert LIBRARY is not None
    ruleset = _rules(RESETTING_RECIDIVE)
    assert unavailable(LIBRARY, ruleset) == "rule 'recidive' counts bans and resets on success"
    data = _generated_log("rfc3339", 5_000, 3)
    native = replay_stream_native(io.BytesIO(data), "src", REFERENCE, ruleset, library=LIBRARY)
    assert native.parser.endswith("rules counted in Python: rule 'recidive' counts bans and resets on success")
    assert _report_fields(native) == _report_fields(replay_stream(io.BytesIO(data), "src", REFERENCE, ruleset))


def test_the_native_engine_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    assert LIBRARY is not None
    monkeypatch.setenv("BASTION_GUARD_NATIVE_ENGINE", "0")
    assert unavailable(LIBRARY, SHIPPED_RULES) == "disabled by BASTION_GUARD_NATIVE_ENGINE=0"


def test_bastionctl_test_says_where_the_rules_were_counted(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_bytes(_generated_log("rfc3339", 2_000, 5))
    command = [sys.executable, "-m", "bastion_guard.cli.bastionctl", "test", str(log), "--no-progress"]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    assert "rules counted natively" in out
    environment = {**os.environ, "BASTION_GUARD_NATIVE_ENGINE": "0"}
    out = subprocess.run(command, capture_output=True, text=True, check=True, env=environment).stdout
    assert "rules counted in Python: disabled by BASTION_GUARD_NATIVE_ENGINE=0" in out
