"""The native hot path gives exactly what the Python parser (the reference) gives.

Differential tests: the same bytes through :func:`bastion_guard.native.iter_results` (the Rust library for
the lines it knows, the Python parser for the rest, one shared connection context) and through
:class:`LineParser` alone must give equal results line for line, field for field; whole logs through
:func:`replay_stream_native` and :func:`replay_stream` must give equal reports and decisions. Inputs:
the benchmark's generated logs in both stamp formats, ``tests/corpus``, lines of the hot shapes with
hostile user names and addresses (hypothesis), and arbitrary bytes, which must never make the library
fail (it catches panics at its boundary; a failure would raise :class:`NativeError` here).
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bastion_guard.events import Event
from bastion_guard.native import iter_results, load, replay_stream_native
from bastion_guard.native.chunks import ChunkParser
from bastion_guard.native.context import NativeContext
from bastion_guard.native.replay import native_share
from bastion_guard.parsing import LineParser, LineStatus
from bastion_guard.parsing.context import ConnectionContext
from bastion_guard.reading import iter_lines
from bastion_guard.replay import Report, replay_stream
from bastion_guard.rules import load_rules

LIBRARY, WHY = load()
pytestmark = pytest.mark.skipif(LIBRARY is None, reason=f"no native parser here: {WHY}")

REFERENCE = 1795899600.0
_REPO = Path(__file__).resolve().parents[2]
_GENERATOR = _REPO / "bench" / "gen_authlog.py"
_CORPUS = _REPO / "tests" / "corpus"
_RULES = _REPO / "rules"


def _reference(data: bytes) -> list[tuple[int, Event | LineStatus]]:
    parser = LineParser(REFERENCE)
    return [(line.number, parser.parse(line.text, "src", line.offset)) for line in iter_lines(io.BytesIO(data))]


def _native(data: bytes) -> list[tuple[int, Event | LineStatus]]:
    assert LIBRARY is not None
    return list(iter_results(io.BytesIO(data), "src", REFERENCE, LIBRARY))


def _assert_same_results(data: bytes) -> None:
    native, reference = _native(data), _reference(data)
    assert len(native) == len(reference)
    for (number, got), (expected_number, expected) in zip(native, reference, strict=True):
        assert (number, type(got)) == (expected_number, type(expected))
        assert got == expected, f"line {number}: {data.splitlines()[number - 1]!r}"


def _generated_log(log_format: str, lines: int, seed: int) -> bytes:
    return subprocess.run(
        [sys.executable, str(_GENERATOR), "--lines", str(lines), "--format", log_format, "--seed", str(seed),
         "--out", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip


def _logs() -> list[object]:
    logs = [(f"generated {fmt}", _generated_log(fmt, 30_000, 7)) for fmt in ("rfc3339", "traditional")]
    logs += [(path.name, path.read_bytes()) for path in sorted(_CORPUS.glob("*.log"))]
    return [pytest.param(data, id=name) for name, data in logs]


_LOGS = _logs()


@pytest.mark.parametrize("data", _LOGS)
def test_same_events_as_the_python_parser(data: bytes) -> None:
    _assert_same_results(data)


def _report_fields(report: Report) -> tuple[object, ...]:
    return (
        report.lines, dict(report.events_by_kind), dict(report.events_by_outcome), dict(report.statuses),
        report.unmatched, report.decisions, report.rule_stats,
    )


@pytest.mark.parametrize("data", _LOGS)
def test_same_report_and_decisions_as_the_reference_replay(data: bytes) -> None:
    assert LIBRARY is not None
    ruleset = load_rules(_RULES)
    reference = replay_stream(io.BytesIO(data), "src", REFERENCE, ruleset)
    native = replay_stream_native(io.BytesIO(data), "src", REFERENCE, ruleset, library=LIBRARY)
    assert _report_fields(native) == _report_fields(reference)
    assert native.parser.startswith("native")


def test_the_generated_log_is_mostly_parsed_natively() -> None:
    """The equality above compares real native work: the library reads nearly every line of the RFC 3339
    log itself, and a traditional-stamp log (which it leaves to Python) is recognised as such."""
    assert LIBRARY is not None
    assert native_share(LIBRARY, _generated_log("rfc3339", 5_000, 3)) > 0.95
    assert native_share(LIBRARY, _generated_log("traditional", 5_000, 3)) < 0.05


def test_bastionctl_test_says_which_parser_it_used(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_bytes(_generated_log("rfc3339", 2_000, 5))
    out = subprocess.run([sys.executable, "-m", "bastion_guard.cli.bastionctl", "test", str(log), "--no-progress"],
                         capture_output=True, text=True, check=True).stdout
    assert "Parser: native (" in out
    log.write_bytes(_generated_log("traditional", 2_000, 5))
    out = subprocess.run([sys.executable, "-m", "bastion_guard.cli.bastionctl", "test", str(log), "--no-progress"],
                         capture_output=True, text=True, check=True).stdout
    assert "Parser: python (the native parser reads only" in out


# --- hostile names and addresses --------------------------------------------------------------------------

_HOSTILE_USER = st.one_of(
    st.sampled_from([
        "root", "", "a b", "x from 6.6.6.6 port 22 ssh2", "from 10.10.1.1", "a 10.9.8.7 port 1",
        "invalid user x", "user", "authenticating", "u:v", "x port 22", "x ssh2: RSA SHA256:abc",
        "y 2001:db8::6 port 7", "z [preauth]", "A" * 101, "é",
    ]),
    st.text("ab :[]()-.0123456789fromptsh\t/", max_size=40),
    st.text(st.characters(codec="ascii"), max_size=120),
)
_ADDRESS = st.sampled_from([
    "151.164.218.16", "10.0.0.1", "2001:db8::1", "2001:db8:0:1::5", "::1", "2001:db8::", "2a01:4f8:1:2::3",
    "::ffff:1.2.3.4", "01.2.3.4", "2001:DB8::1", "host.example", "UNKNOWN", "1.2.3.4:", "",
])
_PORT = st.sampled_from(["22", "38733", "0", "022", "99999999999999999999"])
_PID = st.sampled_from(["19484", "19485", "7"])


@st.composite
def _message(draw: st.DrawFn) -> str:
    user, addr, port = draw(_HOSTILE_USER), draw(_ADDRESS), draw(_PORT)
    reason = draw(st.sampled_from(["Bye Bye", "", "x from 6.6.6.6 port 1", "Too many authentication failures"]))
    preauth = draw(st.sampled_from(["", "", " [preauth]"]))
    shapes = [
        f"Failed password for {user} from {addr} port {port} ssh2",
        f"Failed password for invalid user {user} from {addr} port {port} ssh2",
        f"Failed publickey for {user} from {addr} port {port} ssh2: RSA SHA256:abc{reason}",
        f"Accepted publickey for {user} from {addr} port {port} ssh2: ED25519 SHA256:xyz",
        f"Accepted password for {user} from {addr} port {port} ssh2",
        f"Accepted key ED25519 SHA256:xyz found at /home/{user}/.ssh/authorized_keys:1",
        f"Invalid user {user} from {addr} port {port}",
        f"pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={addr}  user={user}",
        f"pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={addr}",
        f"PAM 2 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost={addr}  user={user}",
        f"pam_unix(sshd:session): session opened for user {user}(uid=0) by (uid=0)",
        f"pam_unix(sshd:session): session closed for user {user}",
        "pam_unix(sshd:auth): check pass; user unknown",
        f'Connection from {addr} port {port} on 203.0.113.10 port 22 rdomain ""',
        f"Connection closed by {addr} port {port}{preauth}",
        f"Connection reset by invalid user {user} {addr} port {port}{preauth}",
        f"Connection closed by authenticating user {user} {addr} port {port}{preauth}",
        f"Disconnected from user {user} {addr} port {port}{preauth}",
        f"Disconnected from invalid user {user} {addr} port {port}{preauth}",
        f"Disconnected from {addr} port {port}{preauth}",
        f"Received disconnect from {addr} port {port}:11: {reason}{preauth}",
        f"Received disconnect from {addr} port {port}:3: {reason}{preauth}",
        f"error: maximum authentication attempts exceeded for {user} from {addr} port {port} ssh2 [preauth]",
        f"Disconnecting invalid user {user} {addr} port {port}: {reason}{preauth}",
        f"fatal: Timeout before authentication for {addr} port {port}",
        f"error: kex_exchange_identification: {reason}",
        f"banner exchange: Connection from {addr} port {port}: invalid format",
        f"Unable to negotiate with {addr} port {port}: no matching key exchange method found.{preauth}",
        f"Did not receive identification string from {addr} port {port}",
        f"message repeated 2 times: [ Failed password for {user} from {addr} port {port} ssh2]",
        "User child is on pid 1234",
        "srclimit_penalise: ipv4: new 1.2.3.4/32 deferred penalty of 10 seconds for penalty: failed authentication",
        draw(st.text(st.characters(codec="ascii"), max_size=60)),
    ]
    return draw(st.sampled_from(shapes))


@st.composite
def _line(draw: st.DrawFn) -> str:
    program = draw(st.sampled_from(["sshd", "sshd", "sshd-session", "sudo", "CRON", "su"]))
    second = draw(st.integers(0, 59))
    fraction = draw(st.sampled_from([".053767", ".1", ".123456789", ""]))
    offset = draw(st.sampled_from(["+00:00", "Z", "-04:30"]))
    tag = f"{program}[{draw(_PID)}]" if program != "sudo" else "sudo"
    return f"2026-11-28T20:02:{second:02d}{fraction}{offset} bastion {tag}: {draw(_message())}"


@settings(max_examples=600, deadline=None)
@given(st.lists(_line(), min_size=1, max_size=12))
def test_same_results_on_hostile_lines(lines: list[str]) -> None:
    """Attribution is the reference's, including through the connection context (a few shared pids)."""
    _assert_same_results("\n".join(lines).encode("utf-8"))


# --- arbitrary input ----------------------------------------------------------------------------------------

_REAL = [line for line in _generated_log("rfc3339", 400, 11).split(b"\n") if line]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
@example(b"2026-11-28T20:03:14.637159+00:00 bastion sshd[1]: Connection re")  # once a panic (caught)
def test_arbitrary_bytes_never_fail_and_match(data: bytes) -> None:
    _assert_same_results(data)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.sampled_from(_REAL), min_size=1, max_size=6),
    st.lists(st.tuples(st.integers(0, 10_000), st.binary(max_size=3)), max_size=4),
)
def test_mutated_real_lines_match(lines: list[bytes], edits: list[tuple[int, bytes]]) -> None:
    """Real lines with bytes replaced or inserted anywhere (NUL, newlines, invalid UTF-8 included)."""
    data = bytearray(b"\n".join(lines))
    for where, replacement in edits:
        at = where % (len(data) + 1)
        data[at : at + len(replacement) // 2] = replacement
    _assert_same_results(bytes(data))


def test_chunk_parser_survives_any_start() -> None:
    """Starts past the end are refused (an error, not a crash); every start inside a block works."""
    assert LIBRARY is not None
    chunks = ChunkParser(LIBRARY, NativeContext(LIBRARY), all_lines=True)
    block = b"\n".join(_REAL[:20])
    for start in range(len(block) + 2):
        chunks.parse(block, start)
    with pytest.raises(RuntimeError):
        chunks.parse(block, len(block) + 2)


# --- the shared connection context ---------------------------------------------------------------------------

_OPERATION = st.tuples(
    st.sampled_from(["remember", "lookup", "forget"]),
    st.sampled_from([None, "bastion", "other"]),
    st.sampled_from([None, 1, 2, 3, 4, 5]),
    st.sampled_from(["1.2.3.4", "2001:db8::1", "5.6.7.8"]),
    st.sampled_from([None, 22, 0, 1 << 70]),
    st.floats(0, 2000, allow_nan=False),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_OPERATION, max_size=60), st.integers(1, 4))
def test_native_context_is_connection_context(operations: list[tuple[str, str | None, int | None, str, int | None, float]], capacity: int) -> None:
    """Same answers, same size, with eviction at a small capacity and ports beyond int64."""
    assert LIBRARY is not None
    native, reference = NativeContext(LIBRARY, capacity), ConnectionContext(capacity)
    for operation, host, pid, ip, port, epoch in operations:
        if operation == "remember":
            native.remember(host, pid, ip, port, epoch)
            reference.remember(host, pid, ip, port, epoch)
        elif operation == "lookup":
            assert native.lookup(host, pid, epoch) == reference.lookup(host, pid, epoch)
        else:
            native.forget(host, pid)
            reference.forget(host, pid)
        assert len(native) == len(reference)
