"""bastiond's Prometheus metrics: names, labels, pre-initialised series, exposition and the loopback server."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bastion_guard import __version__
from bastion_guard import metrics as metrics_module
from bastion_guard.decisions import Verdict
from bastion_guard.errors import BastionError
from bastion_guard.events import Event, Kind, Outcome
from bastion_guard.metrics import BAN_ACTIONS, EVENT_OUTCOMES, SKIP_REASONS, Metrics
from bastion_guard.parsing import LineParser, LineStatus
from bastion_guard.rules import Engine, load_rules

REPO = Path(__file__).resolve().parents[2]
CORPUS = [
    REPO / "tests" / "corpus" / "real_sshd_rfc3339.log",
    REPO / "tests" / "corpus" / "real_sshd_traditional.log",
    REPO / "daemon" / "bastion_guard" / "defaults" / "demo-auth.log",
]
P = "2026-11-28T20:02:18.053767+00:00 vm sshd[19484]: "
# Kinds the corpus files above do not contain, in lines real systems wrote (see test_sshd_catalogue.py).
EXTRA_LINES = [
    P + "error: Authentication key ED25519 SHA256:wYkpp2sZQpOPWMeBw9tA+dDlUubW7IHo959RAsth9z8 revoked by file /etc/ssh/revoked.krl",
    P + "Address 192.0.2.3 maps to evil.example.com, but this does not map back to the address - POSSIBLE BREAK-IN ATTEMPT!",
    P + "ROOT LOGIN REFUSED FROM ::ffff:1.2.3.4 port 12345 [preauth]",
    P + "error: PAM: Authentication failure for test-ipv6 from 2606:2800:220:1:248:1893:25c8:1946",
    "2026-11-28T20:02:18.1+00:00 vm sudo:    bob : 3 incorrect password attempts ; TTY=pts/1 ; PWD=/ ; USER=root ; COMMAND=/bin/sh",
    "Nov 28 20:02:18 vm su: FAILED SU (to root) bob on pts/1",
]
SOURCE = "file:/var/log/auth.log"
_DOC_ROW = re.compile(r"^(bastion_\w+)\s+(counter|gauge=1|gauge|histogram)\b\s*(.*)$")
_LABEL_NAMES = {"source", "kind", "outcome", "reason", "rule", "verdict", "action", "version", "python_version",
                "output", "result"}


def documented() -> dict[str, tuple[str, set[str]]]:
    """The module docstring's table: metric name -> (type, label names)."""
    table: dict[str, tuple[str, set[str]]] = {}
    for line in (metrics_module.__doc__ or "").splitlines():
        match = _DOC_ROW.match(line)
        if match:
            name, kind, rest = match.groups()
            labels = {word for word in re.findall(r"[a-z_]+", rest.split("(")[0]) if word in _LABEL_NAMES}
            table[name] = ("gauge" if kind == "gauge=1" else kind, labels)
    return table


def exposed(metrics: Metrics) -> dict[str, tuple[str, str, set[str]]]:
    """What a scrape sees: exposed name -> (type, help, label names of its samples)."""
    text = generate_latest(metrics.registry).decode()
    found: dict[str, tuple[str, str, set[str]]] = {}
    for family in text_string_to_metric_families(text):
        if family.name.endswith("_created"):
            continue  # client_python's creation stamp of each counter and histogram, not a metric of ours
        name = family.name + "_total" if family.type == "counter" else family.name
        labels = {label for sample in family.samples for label in sample.labels if label != "le"}
        found[name] = (family.type, family.documentation, labels)
    return found


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    """One sample's value, or None when the series does not exist."""
    return metrics.registry.get_sample_value(name, labels)


def parsed_corpus() -> list[Event]:
    """Every event of the corpus files and the extra lines."""
    events = []
    for path in CORPUS:
        parser = LineParser(path.stat().st_mtime)
        events += [event for line in path.read_text(errors="replace").splitlines()
                   if isinstance(event := parser.parse(line), Event)]
    parser = LineParser(1795899600.0)
    events += [event for line in EXTRA_LINES if isinstance(event := parser.parse(line), Event)]
    return events


def test_every_documented_metric_is_exposed_as_documented() -> None:
    """The docstring table and the exposition agree on names, types and label names, and each has help."""
    metrics = Metrics(sources=[SOURCE], rules=[("sshd-bruteforce", Verdict.BAN)])
    metrics.set_position_lag(SOURCE, 0)  # the only series that does not exist before it is known
    metrics.add_output("es")  # shipping series exist per configured sink
    table = documented()
    seen = exposed(metrics)
    assert len(table) == 22
    assert set(seen) == set(table)
    for name, (kind, labels) in table.items():
        seen_kind, help_text, seen_labels = seen[name]
        assert (seen_kind, seen_labels) == (kind, labels), name
        assert len(help_text) > 20, name


def test_names_follow_the_conventions() -> None:
    """Prefix bastion_, _total on counters and only there, base-unit suffixes where there is a unit."""
    for name, (kind, _help, _labels) in exposed(Metrics()).items():
        assert name.startswith("bastion_"), name
        assert name.endswith("_total") == (kind == "counter"), name
        assert not re.search(r"_(ms|milliseconds|minutes|hours|kb|kilobytes|mb|megabytes)(_|$)", name), name
    assert documented()["bastion_processing_seconds"][0] == "histogram"


def test_no_label_can_hold_an_address_or_a_user() -> None:
    """After a real attack log went through, no address or user name appears anywhere in the exposition."""
    events = parsed_corpus()
    metrics = Metrics(sources=[SOURCE])
    metrics.observe_batch(SOURCE, lines=len(events), events=Counter((e.kind, e.outcome) for e in events))
    engine = Engine(load_rules(REPO / "rules"))
    decisions = [decision for event in events for decision in engine.feed(event)]
    assert decisions
    for decision in decisions:
        metrics.decision(decision.rule, decision.verdict)
    text = generate_latest(metrics.registry).decode()
    label_values = set(re.findall(r'="([^"]*)"', text))
    secrets = {e.ip for e in events if e.ip} | {e.user for e in events if e.user} | {d.target for d in decisions}
    assert len(secrets) > 20
    assert not label_values & secrets
    assert not any(name in {"ip", "address", "user", "host", "target"} for name in re.findall(r"[{,](\w+)=", text))


def test_known_label_sets_start_at_zero() -> None:
    """Every kind/outcome pair, skip reason, ban action, configured source and rule exists at 0 before use."""
    metrics = Metrics(sources=["journal"], rules=[("sshd-bruteforce", "ban"), ("user-enumeration", "alert")])
    for kind, outcome in EVENT_OUTCOMES.items():
        assert value(metrics, "bastion_auth_events_total", kind=kind.value, outcome=outcome.value) == 0
    for reason in SKIP_REASONS:
        assert value(metrics, "bastion_skipped_lines_total", source="journal", reason=reason) == 0
    for action in BAN_ACTIONS:
        assert value(metrics, "bastion_ban_actions_total", action=action) == 0
    for name in ("bastion_log_lines_total", "bastion_unparsed_lines_total", "bastion_source_errors_total"):
        assert value(metrics, name, source="journal") == 0
    assert value(metrics, "bastion_decisions_total", rule="sshd-bruteforce", verdict="ban") == 0
    assert value(metrics, "bastion_decisions_total", rule="user-enumeration", verdict="alert") == 0
    assert value(metrics, "bastion_decisions_total", rule="sshd-bruteforce", verdict="alert") is None
    for name in ("bastion_firewall_errors_total", "bastion_state_commit_errors_total", "bastion_up",
                 "bastion_banned_addresses", "bastion_tracked_keys", "bastion_processing_seconds_count"):
        assert value(metrics, name) == 0
    assert value(metrics, "bastion_source_position_lag_bytes", source="journal") is None


def test_event_outcome_table_matches_the_parsers() -> None:
    """Each kind appears in real lines with exactly the outcome the table pre-initialises."""
    pairs = {(event.kind, event.outcome) for event in parsed_corpus()}
    assert pairs <= set(EVENT_OUTCOMES.items())
    assert {kind for kind, _ in pairs} == set(Kind) == set(EVENT_OUTCOMES)


def test_observe_batch_counts_everything_of_a_batch() -> None:
    """One call counts lines, events, unmatched and skipped lines and the batch's duration."""
    metrics = Metrics(sources=[SOURCE])
    events = Counter({(Kind.AUTH_FAILURE, Outcome.FAILURE): 3, (Kind.AUTH_SUCCESS, Outcome.SUCCESS): 1})
    for _ in range(2):
        metrics.observe_batch(SOURCE, lines=10, events=events, unmatched=2, skipped_long=1, oversized=1,
                              malformed=3, seconds=0.004)
    metrics.observe_batch("journal", lines=1, events={(Kind.SU_FAILURE, Outcome.FAILURE): 1})
    assert value(metrics, "bastion_log_lines_total", source=SOURCE) == 20
    assert value(metrics, "bastion_auth_events_total", kind="auth_failure", outcome="failure") == 6
    assert value(metrics, "bastion_auth_events_total", kind="auth_success", outcome="success") == 2
    assert value(metrics, "bastion_auth_events_total", kind="su_failure", outcome="failure") == 1
    assert value(metrics, "bastion_unparsed_lines_total", source=SOURCE) == 4
    skipped = {reason: value(metrics, "bastion_skipped_lines_total", source=SOURCE, reason=reason)
               for reason in SKIP_REASONS}
    assert skipped == {"long": 2, "oversized": 2, "malformed": 6}
    assert value(metrics, "bastion_processing_seconds_count") == 2
    assert value(metrics, "bastion_processing_seconds_bucket", le="0.005") == 2
    assert value(metrics, "bastion_log_lines_total", source="journal") == 1
    assert value(metrics, "bastion_unparsed_lines_total", source="journal") == 0  # a new source starts at 0


def test_other_calls_set_their_series() -> None:
    """Decisions, ban actions, errors, gauges and the up flag each land in their own series."""
    metrics = Metrics(sources=[SOURCE], start_time=1795899600.0)
    metrics.decision("sshd-bruteforce", Verdict.BAN)
    metrics.decision("sshd-bruteforce", "ban", 2)
    metrics.ban_action("ban", 3)
    metrics.ban_action("unban", 1)
    metrics.firewall_error()
    metrics.commit_error()
    metrics.source_error(SOURCE)
    metrics.set_active_bans(7)
    metrics.set_tracked_keys(42)
    metrics.mark_up()
    assert value(metrics, "bastion_decisions_total", rule="sshd-bruteforce", verdict="ban") == 3
    assert value(metrics, "bastion_ban_actions_total", action="ban") == 3
    assert value(metrics, "bastion_ban_actions_total", action="unban") == 1
    assert value(metrics, "bastion_firewall_errors_total") == 1
    assert value(metrics, "bastion_state_commit_errors_total") == 1
    assert value(metrics, "bastion_source_errors_total", source=SOURCE) == 1
    assert value(metrics, "bastion_banned_addresses") == 7
    assert value(metrics, "bastion_tracked_keys") == 42
    assert value(metrics, "bastion_up") == 1
    assert value(metrics, "bastion_start_time_seconds") == 1795899600.0
    metrics.mark_down()
    assert value(metrics, "bastion_up") == 0
    build = [s for f in metrics.registry.collect() if f.name == "bastion_build_info" for s in f.samples]
    assert [(s.labels["version"], s.value) for s in build] == [(__version__, 1.0)]


def test_position_lag_exists_only_while_known() -> None:
    """The lag series appears when set and disappears when the lag becomes unknown; it is never negative."""
    metrics = Metrics(sources=[SOURCE])
    metrics.set_position_lag(SOURCE, 4096)
    assert value(metrics, "bastion_source_position_lag_bytes", source=SOURCE) == 4096
    metrics.set_position_lag(SOURCE, -10)  # the file shrank under us (truncated): nothing is unread
    assert value(metrics, "bastion_source_position_lag_bytes", source=SOURCE) == 0
    metrics.set_position_lag(SOURCE, None)
    metrics.set_position_lag("journal", None)
    assert value(metrics, "bastion_source_position_lag_bytes", source=SOURCE) is None


def test_values_outside_the_bounded_sets_are_refused() -> None:
    """A kind, outcome, verdict or ban action outside its set raises instead of creating a series."""
    metrics = Metrics()
    with pytest.raises(ValueError, match="unknown ban action"):
        metrics.ban_action("restore", 1)
    with pytest.raises(ValueError):
        metrics.observe_batch(SOURCE, lines=1, events={("203.0.113.7", "failure"): 1})  # type: ignore[dict-item]
    with pytest.raises(ValueError):
        metrics.decision("sshd-bruteforce", "root")
    assert "203.0.113.7" not in generate_latest(metrics.registry).decode()


def test_registry_is_private() -> None:
    """Two Metrics live side by side, and nothing lands in client_python's global registry."""
    first, second = Metrics(), Metrics()
    first.firewall_error()
    assert value(second, "bastion_firewall_errors_total") == 0
    assert not any(family.name.startswith("bastion_") for family in REGISTRY.collect())


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian package prometheus) is not installed")
def test_exposition_passes_promtool_check_metrics() -> None:
    """``promtool check metrics`` accepts the exposition of a Metrics with every series in use."""
    metrics = Metrics(sources=[SOURCE, "journal"], rules=[("sshd-bruteforce", "ban")])
    metrics.observe_batch(SOURCE, lines=5, events={(Kind.AUTH_FAILURE, Outcome.FAILURE): 2}, unmatched=1,
                          seconds=0.01)
    metrics.set_position_lag(SOURCE, 100)
    metrics.decision("sshd-bruteforce", "ban")
    metrics.mark_up()
    result = subprocess.run(["promtool", "check", "metrics"], input=generate_latest(metrics.registry),
                            capture_output=True, check=False, timeout=30)
    assert result.returncode == 0, (result.stdout + result.stderr).decode()
    assert not result.stdout.strip() and not result.stderr.strip()  # not even lint warnings


def test_server_listens_on_loopback_only_by_default() -> None:
    """serve() binds 127.0.0.1, answers /metrics there, refuses other local addresses, and close() stops it."""
    metrics = Metrics()
    server = metrics.serve(port=0)
    assert server is not None
    try:
        host, port = server.server_address[:2]
        assert host == "127.0.0.1"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            assert b"bastion_build_info{" in response.read()
        # All of 127/8 reaches this host: a socket bound to 0.0.0.0 would answer on 127.0.0.2 too.
        with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.2", port), timeout=5):
            pass
    finally:
        metrics.close()
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=5):
        pass


def test_serve_defaults_are_loopback_and_9474() -> None:
    """The documented defaults: 127.0.0.1 and port 9474."""
    defaults = Metrics.serve.__defaults__
    assert defaults == ("127.0.0.1", 9474)


def test_serve_failure_is_a_bastion_error() -> None:
    """A port in use becomes a BastionError naming the address, not a traceback from the HTTP server."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(BastionError, match=rf"metrics: cannot listen on 127\.0\.0\.1:{port}: "):
            Metrics().serve("127.0.0.1", port)


def test_line_status_names_match_skip_reasons() -> None:
    """The parser's refusal statuses that become skip reasons exist under those names."""
    assert {LineStatus.OVERSIZED.value, LineStatus.MALFORMED.value} <= set(SKIP_REASONS)


def test_key_steps_are_counted_and_bounded() -> None:
    """Key lifecycle steps count by action and outcome; an unknown step name cannot grow the label set."""
    metrics = Metrics()
    metrics.key_step("shared-key-rotation", "success")
    metrics.key_step("made-up-step", "weird")
    registry = metrics.registry
    assert registry.get_sample_value(
        "bastion_key_steps_total", {"action": "shared-key-rotation", "outcome": "success"}) == 1
    assert registry.get_sample_value("bastion_key_steps_total", {"action": "other", "outcome": "info"}) == 1
    assert registry.get_sample_value("bastion_key_steps_total", {"action": "key-revoked", "outcome": "failure"}) == 0
