"""The fast paths give exactly what the plain paths give: LineParser.parse vs the regexes (line by line on
made-up lines, and events and decisions on whole realistic logs), and reading.iter_batches vs iter_lines.

``LineParser.parse`` splits the common RFC 3339 line with ``str.split`` against tables the envelope
regex filled (see ``parsing.envelope.FastTables``); ``LineParser._slow`` always runs the regexes. Both
parsers here see the same lines in the same order (so their connection contexts agree), and every result
must be equal, field for field. Lines are built from real shapes with arbitrary user names, hosts, tags,
stamps and separators, including the near misses the fast path must hand to the regex.
"""

from __future__ import annotations

import io
import subprocess
import sys
from datetime import UTC
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion_guard.events import Event
from bastion_guard.parsing import LineParser, LineStatus
from bastion_guard.reading import iter_batches, iter_lines
from bastion_guard.rules import Engine, load_rules

REFERENCE = 1795899600.0

_ANY_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
_USER = st.one_of(
    st.sampled_from(["root", "admin", "x from 6.6.6.6 port 22 ssh2", "a b", "é", "", "in valid", "u:v"]),
    _ANY_TEXT,
    st.text("ab :[]\t\u00a0\u2003x", max_size=120),
)
_ADDR = st.sampled_from(["151.164.218.16", "2001:db8::1", "::ffff:1.2.3.4", "host.example", "UNKNOWN", "1.2.3.4:"])
_PORT = st.sampled_from(["22", "38733", "0", "\u0661\u0662"])


@st.composite
def _message(draw: st.DrawFn) -> str:
    user, addr, port = draw(_USER), draw(_ADDR), draw(_PORT)
    shapes = [
        f"Failed password for {user} from {addr} port {port} ssh2",
        f"Failed password for invalid user {user} from {addr} port {port} ssh2",
        f"Failed publickey for {user} from {addr} port {port} ssh2: RSA SHA256:abc",
        f"Invalid user {user} from {addr} port {port}",
        f"pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={addr}  user={user}",
        "pam_unix(sshd:auth): check pass; user unknown",
        f'Connection from {addr} port {port} on 203.0.113.10 port 22 rdomain ""',
        f"Connection closed by {addr} port {port} [preauth]",
        f"Connection closed by invalid user {user} {addr} port {port} [preauth]",
        f"Disconnected from authenticating user {user} {addr} port {port} [preauth]",
        f"Received disconnect from {addr} port {port}:11: Bye Bye [preauth]",
        f"error: maximum authentication attempts exceeded for {user} from {addr} port {port} ssh2 [preauth]",
        f"Accepted publickey for {user} from {addr} port {port} ssh2: ED25519 SHA256:xyz",
        f"message repeated 3 times: [ Failed password for {user} from {addr} port {port} ssh2]",
        f"[ID 800047 auth.info] Failed password for {user} from {addr} port {port} ssh2",
        f"{user} : TTY=pts/0 ; PWD=/home ; USER=root ; COMMAND=/bin/ls",
        draw(_ANY_TEXT),
    ]
    return draw(st.sampled_from(shapes))


_DAY = st.sampled_from(["28", "29", "30", "31", "\u0662\u0668"])
_CLOCK = st.sampled_from(["20:02:18", "20:02:18", "23:59:59", "00:00:00", "20:02:60", "20:02:1", "2\u0660:02:18"])
_SEPARATOR = st.sampled_from(["T", "T", "T", " "])
_FRACTION = st.sampled_from(
    [".053767", ".053767", ".05376", ".1234567", ",053767", "", ".\u0661\u0662\u0663\u0664\u0665\u0666", ".05376x",
     "x053767", ".05376\u00b2"]
)
_OFFSET = st.sampled_from(["+00:00", "+00:00", "Z", "+0000", "-04:00", "", "+00:0"])
_HOST = st.one_of(st.sampled_from(["bastion", "b\tx", "h\u00a0h", "[h]", "sshd[1]:"]), _ANY_TEXT)
_TAG = st.builds(
    lambda program, pid, colon: f"{program}[{pid}]{colon}",
    st.sampled_from(["sshd", "sshd-session", "sudo", "su", "CRON", "sshd(pam_unix)", "a:b", "s[", "dropbear"]),
    st.sampled_from(["19484", "1", "\u0661\u0662", "12345678901", ""]),
    st.sampled_from([":", ":", "", "::"]),
)


@st.composite
def _lines(draw: st.DrawFn) -> list[str]:
    """A line, preceded by a well-formed "teacher" line with the same stamp minute and tag.

    The teacher fills the fast tables (its stamp minute and host through the regex path, its tag through
    the fast path), so the line after it finds its stamp minute and tag there and must be split exactly as the
    regex would, or be handed to the regex.
    """
    day, clock, offset = draw(_DAY), draw(_CLOCK), draw(_OFFSET)
    stamp = f"2026-11-{day}{draw(_SEPARATOR)}{clock}{draw(_FRACTION)}{offset}"
    # The teacher's stamp: same minute, a plain fraction, its own offset (a minute has one entry).
    teacher_stamp = f"2026-11-{day}T{clock[:6]}00.000001{draw(_OFFSET)}"
    # Mostly the teacher's host and a well-formed tag: the near misses are then in one part at a time.
    host = draw(st.one_of(st.just("bastion "), st.just("bastion "), _HOST.map(lambda h: h + " "), st.just("")))
    tag = draw(st.one_of(st.just("sshd[19484]:"), _TAG))
    space = draw(st.sampled_from([" ", " ", "  ", ""]))
    teacher = f"{teacher_stamp} bastion {tag} Connection closed by 192.0.2.9 port 1"
    return [teacher, teacher, f"{stamp} {host}{tag}{space}{draw(_message())}"]


def _same(fast: Event | LineStatus, slow: Event | LineStatus) -> None:
    assert fast == slow
    assert type(fast) is type(slow)


@settings(max_examples=1000, deadline=None)
@given(st.lists(_lines(), min_size=1, max_size=4))
def test_fast_path_equals_regex_path(groups: list[list[str]]) -> None:
    fast_parser = LineParser(REFERENCE)
    slow_parser = LineParser(REFERENCE)
    lines = [line for group in groups for line in group]
    # Everything twice: what the first pass teaches the fast tables, the second pass can use.
    for position, line in enumerate([*lines, *lines]):
        _same(fast_parser.parse(line, "src", position), slow_parser._slow(line, "src", position))


def test_fast_path_is_taken_for_the_common_shape() -> None:
    parser = LineParser(REFERENCE)
    first = "2026-11-28T20:02:18.053767+00:00 bastion sshd[19484]: Invalid user a from 192.0.2.1 port 5"
    parser.parse(first)
    fast = parser._envelopes.fast
    assert "bastion" in fast.hosts and "2026-11-28T20:02" in fast.minutes  # learned from the regex
    # A new second and a new pid of a known minute and host are split without the regex.
    line = "2026-11-28T20:02:19.000001+00:00 bastion sshd[19485]: Invalid user b from 192.0.2.2 port 6"
    result = parser.parse(line, "s", 7)
    assert "2026-11-28T20:02:19" in fast.seconds and "sshd[19485]:" in fast.tags
    _same(result, LineParser(REFERENCE)._slow(line, "s", 7))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300).map(lambda b: b.replace(b"a", b"\n").replace(b"b", b"\r")), st.integers(1, 64))
def test_batches_hold_the_lines_of_iter_lines(data: bytes, chunk_bytes: int) -> None:
    """replay's iter_batches() yields exactly the texts iter_lines() yields, and ends at the stream's end."""
    lines = [line.text for line in iter_lines(io.BytesIO(data), chunk_bytes)]
    batches = list(iter_batches(io.BytesIO(data), chunk_bytes))
    assert [text for _, texts in batches for text in texts] == lines
    assert (batches[-1][0] if batches else 0) == len(data)


_GENERATOR = Path(__file__).resolve().parents[2] / "bench" / "gen_authlog.py"
_CORPUS = Path(__file__).resolve().parents[1] / "corpus"
_RULES = Path(__file__).resolve().parents[2] / "rules"


def _generated_log(log_format: str, lines: int, seed: int) -> list[str]:
    """Lines of the benchmark's own realistic auth.log (mixed attacks, IPv4 and IPv6, hostile user names)."""
    run = subprocess.run(
        [sys.executable, str(_GENERATOR), "--lines", str(lines), "--format", log_format, "--seed", str(seed),
         "--out", "-"],
        capture_output=True, check=True,
    )  # fmt: skip
    return run.stdout.decode("ascii").splitlines()


def _realistic_logs() -> list[object]:
    logs = [(f"generated {fmt}", _generated_log(fmt, 30_000, 7)) for fmt in ("rfc3339", "traditional")]
    logs += [(path.name, path.read_text(encoding="utf-8").splitlines()) for path in sorted(_CORPUS.glob("*.log"))]
    return [pytest.param(name, lines, id=name) for name, lines in logs]


@pytest.mark.parametrize(("name", "lines"), _realistic_logs())
def test_fast_path_gives_the_regex_paths_events_and_decisions(name: str, lines: list[str]) -> None:
    """On whole realistic logs, events and the engine's decisions are those of the regex path.

    Per-line equality already implies equal decisions; feeding both engines states it for the contract that
    matters (``bastionctl test`` and the daemon), and makes sure the logs exercise the rules at all.
    """
    ruleset = load_rules(_RULES)
    fast_parser, slow_parser = LineParser(REFERENCE, UTC), LineParser(REFERENCE, UTC)
    fast_engine, slow_engine = Engine(ruleset), Engine(ruleset)
    fast_decisions, slow_decisions = [], []
    events = 0
    for position, line in enumerate(lines, 1):
        fast = fast_parser.parse(line, name, position)
        slow = slow_parser._slow(line, name, position)
        _same(fast, slow)
        if isinstance(fast, Event) and isinstance(slow, Event):
            events += 1
            fast_decisions.extend(fast_engine.feed(fast))
            slow_decisions.extend(slow_engine.feed(slow))
    assert events > len(lines) // 2  # the logs are mostly events: this compares real work
    assert fast_decisions == slow_decisions
    assert fast_engine.stats == slow_engine.stats
    if name.startswith("generated"):
        assert len(fast_decisions) > 10  # brute force, scanners and enumeration in the generated log are banned
