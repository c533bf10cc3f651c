"""Journal entries become records with a trusted envelope; the follower's contract against fake journalctls.

The JSON lines are verbatim ``journalctl -o json --all`` output from a real sshd and real forgers on Debian 12
(systemd 252, captured by tests/integration/test_journald_source.py's setup), trimmed where noted. The fake
journalctl scripts only inject what a real one rarely does on cue: exiting, over-long lines, garbage, and
output faster than the consumer reads. No root needed.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bastion_guard.errors import SourceError
from bastion_guard.events import Event, Kind
from bastion_guard.parsing import LineParser, LineStatus
from bastion_guard.sources import journald
from bastion_guard.sources.journald import (
    JournalctlError,
    JournalFollower,
    JournalPosition,
    JournalRecord,
    journal_event,
    journalctl_argv,
    parse_journal_line,
)

CURSOR = (
    "s=5e5eee8ffd6d4089a3138053e0d9d125;i=7;b=15ccdf2287854702ba726044b3f7c057;m=b7ba3d49;t=6615d540eae22;"
    "x=a07f2a97879e9281"
)
# A real sshd 9.2p1 monitor (uid 0) logging a failed password through syslog() into journald.
REAL_SSHD = (
    '{"MESSAGE":"Failed password for invalid user nosuchuser from 127.0.0.1 port 50244 ssh2",'
    '"__MONOTONIC_TIMESTAMP":"3082435913","_BOOT_ID":"15ccdf2287854702ba726044b3f7c057",'
    f'"__CURSOR":"{CURSOR}","_RUNTIME_SCOPE":"system","_GID":"0","_HOSTNAME":"vm",'
    '"SYSLOG_IDENTIFIER":"sshd","PRIORITY":"6","_CMDLINE":"\\"sshd: [accepted]\\"",'
    '"_SOURCE_REALTIME_TIMESTAMP":"1795903330364926","_CAP_EFFECTIVE":"1fffeffffff","_COMM":"sshd",'
    '"_PID":"7611","_EXE":"/usr/sbin/sshd","SYSLOG_FACILITY":"4","SYSLOG_TIMESTAMP":"Nov 28 22:02:10 ",'
    '"_UID":"0","SYSLOG_PID":"7611","_MACHINE_ID":"3d1219c7c4c5404aaa1f6d2a48adfda4",'
    '"__REALTIME_TIMESTAMP":"1795903330364962","_TRANSPORT":"syslog"}'
)
# ``logger -t sshd 'Failed password for root from 6.6.6.6 port 22 ssh2'`` run by root: the tag is forged.
LOGGER_FORGED = (
    '{"_BOOT_ID":"15ccdf2287854702ba726044b3f7c057","__MONOTONIC_TIMESTAMP":"2631709745",'
    '"SYSLOG_IDENTIFIER":"sshd","__CURSOR":"s=974e8e8886b149dbaf28de9b89441205;i=3;'
    'b=15ccdf2287854702ba726044b3f7c057;m=9cdcb431;t=6615d3931250a;x=c1729c73fb23ee64",'
    '"_TRANSPORT":"syslog","MESSAGE":"Failed password for root from 6.6.6.6 port 22 ssh2","_PID":"20381",'
    '"_UID":"0","_COMM":"logger","_EXE":"/usr/bin/logger","__REALTIME_TIMESTAMP":"1795902879638794"}'
)
# ``echo hi | systemd-cat -t sshd``: the writer exited before journald read /proc, so there is no _COMM.
NO_COMM = (
    '{"_BOOT_ID":"15ccdf2287854702ba726044b3f7c057","__MONOTONIC_TIMESTAMP":"2631719048",'
    '"MESSAGE":"Failed password for root from 6.6.6.6 port 22 ssh2","__CURSOR":"s=974e8e8886b149dbaf28de9b89441205;'
    'i=4;b=15ccdf2287854702ba726044b3f7c057;m=9cdcd888;t=6615d39314961;x=3b9cad549d7e2a7c",'
    '"_TRANSPORT":"stdout","__REALTIME_TIMESTAMP":"1795902879648097","SYSLOG_IDENTIFIER":"sshd","_UID":"0",'
    '"_PID":"20383"}'
)
# ``printf 'binary \xff\x01 end' | logger -t sshd``: not printable UTF-8, so journalctl prints the bytes.
BINARY = (
    '{"__MONOTONIC_TIMESTAMP":"2648118009","_COMM":"logger",'
    '"MESSAGE":[98,105,110,97,114,121,32,255,1,32,101,110,100],"_BOOT_ID":"15ccdf2287854702ba726044b3f7c057",'
    '"__REALTIME_TIMESTAMP":"1795902896047058","__CURSOR":"s=a5a787ad6fbc4f32b7194e13459892e3;i=161;'
    'b=15ccdf2287854702ba726044b3f7c057;m=9dd7002f;t=6615d3a2b7108;x=1"}'
)


def entry(**fields: Any) -> str:
    """A minimal journalctl JSON line: a cursor, a timestamp and ``fields``."""
    return json.dumps({"__CURSOR": CURSOR, "__REALTIME_TIMESTAMP": "1795903330364962", **fields})


@pytest.fixture
def parser() -> LineParser:
    """A parser anchored at the time of the captured entries."""
    return LineParser(1795903330.0)


# ------------------------------------------------------------------------------------------ decoding


def test_real_sshd_entry_takes_its_envelope_from_trusted_fields() -> None:
    """Program, pid, uid, exe and host come from journald's fields; the time from __REALTIME_TIMESTAMP."""
    record = parse_journal_line(REAL_SSHD)
    assert record == JournalRecord(
        cursor=CURSOR,
        epoch=1795903330.364962,
        host="vm",
        program="sshd",
        pid=7611,
        message="Failed password for invalid user nosuchuser from 127.0.0.1 port 50244 ssh2",
        unit=None,
        uid=0,
        trusted=True,
        exe="/usr/sbin/sshd",
    )


def test_real_sshd_entry_parses_into_an_event(parser: LineParser) -> None:
    """journal_event hands the trusted program and the envelope fields to the parser."""
    record = parse_journal_line(REAL_SSHD)
    assert record is not None
    event = journal_event(parser, record, position=7)
    assert isinstance(event, Event)
    assert (event.kind, event.ip, event.port, event.user) == (Kind.AUTH_FAILURE, "127.0.0.1", 50244, "nosuchuser")
    assert (event.program, event.pid, event.host, event.epoch) == ("sshd", 7611, "vm", record.epoch)
    assert (event.source, event.position) == ("journal", 7)


def test_syslog_identifier_forged_by_logger_is_not_sshd(parser: LineParser) -> None:
    """SYSLOG_IDENTIFIER=sshd from _COMM=logger is the program logger: no event for 6.6.6.6."""
    record = parse_journal_line(LOGGER_FORGED)
    assert record is not None
    assert (record.program, record.trusted, record.exe) == ("logger", True, "/usr/bin/logger")
    assert journal_event(parser, record) is LineStatus.OTHER_PROGRAM


def test_entry_without_comm_is_untrusted_and_never_parsed(parser: LineParser) -> None:
    """Without _COMM the program is the sender's tag, marked untrusted, and journal_event refuses it."""
    record = parse_journal_line(NO_COMM)
    assert record is not None
    assert (record.program, record.trusted) == ("sshd", False)
    assert journal_event(parser, record) is LineStatus.OTHER_PROGRAM


def test_binary_message_is_decoded_with_invalid_bytes_visible() -> None:
    """A MESSAGE printed as a byte array is UTF-8 with backslash escapes for invalid bytes."""
    record = parse_journal_line(BINARY)
    assert record is not None
    assert record.message == "binary \\xff\x01 end"


def test_missing_optional_fields_are_none() -> None:
    """Only the cursor and the timestamp are required; absent MESSAGE is empty."""
    record = parse_journal_line(entry(_COMM="sshd"))
    assert record is not None
    assert (record.host, record.pid, record.uid, record.unit, record.exe, record.message) == (
        None,
        None,
        None,
        None,
        None,
        "",
    )
    assert record.trusted


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"_PID": "12x"}, None),
        ({"_PID": "\u0661\u0662"}, None),  # Arabic-Indic digits: str.isdigit() says yes, a pid says no
        ({"_PID": "-5"}, None),
        ({"_PID": [52, 50]}, 42),
        ({"_PID": 42}, None),
    ],
)
def test_pid_must_be_plain_decimal(fields: dict[str, Any], expected: int | None) -> None:
    """A numeric field that is not ASCII decimal text is treated as absent."""
    record = parse_journal_line(entry(_COMM="sshd", **fields))
    assert record is not None
    assert record.pid == expected


def test_systemd_unit_and_uid_are_kept() -> None:
    """On a systemd host sshd runs in ssh.service; the unit and uid reach the record."""
    record = parse_journal_line(entry(_COMM="sshd", _SYSTEMD_UNIT="ssh.service", _UID="0", _HOSTNAME="bastion"))
    assert record is not None
    assert (record.unit, record.uid, record.host) == ("ssh.service", 0, "bastion")


def test_field_sent_twice_takes_the_first_value() -> None:
    """journalctl prints a repeated field as a list of values; the first counts."""
    record = parse_journal_line(entry(_COMM="sshd", MESSAGE=["first", [115, 101, 99]]))
    assert record is not None
    assert record.message == "first"


@pytest.mark.parametrize(
    "line",
    [
        "",
        "not json",
        "[1, 2]",
        '"a string"',
        json.dumps({"__REALTIME_TIMESTAMP": "1", "MESSAGE": "no cursor"}),
        json.dumps({"__CURSOR": CURSOR, "MESSAGE": "no timestamp"}),
        json.dumps({"__CURSOR": CURSOR, "__REALTIME_TIMESTAMP": "soon"}),
        json.dumps({"__CURSOR": "", "__REALTIME_TIMESTAMP": "1"}),
        b'{"__CURSOR": "\xff", "__REALTIME_TIMESTAMP": "1"}',
        "[" * 100_000,
    ],
)
def test_malformed_lines_are_skipped(line: str | bytes) -> None:
    """Anything that is not a JSON entry with a cursor and a timestamp yields no record."""
    assert parse_journal_line(line) is None


@pytest.mark.parametrize(
    ("message", "kept"),
    [
        ("x" * journald.MAX_MESSAGE_BYTES, True),
        ("x" * (journald.MAX_MESSAGE_BYTES + 1), False),
        ("\u20ac" * (journald.MAX_MESSAGE_BYTES // 3), True),  # 3 bytes each in UTF-8
        ("\u20ac" * (journald.MAX_MESSAGE_BYTES // 3 + 1), False),
        (list(b"\xff" * (journald.MAX_MESSAGE_BYTES + 1)), False),
        (None, False),  # journalctl's null: "too large to show"
    ],
)
def test_huge_or_withheld_messages_are_skipped(message: object, kept: bool) -> None:
    """A MESSAGE over 64 KiB of UTF-8, or null, yields no record."""
    assert (parse_journal_line(entry(_COMM="sshd", MESSAGE=message)) is not None) is kept


# ------------------------------------------------------------------------------------------ command line


def test_argv_from_the_start_of_the_journal() -> None:
    """Without a position: every stored entry (--no-tail; --follow alone shows only 10), then follow."""
    argv = journalctl_argv(None)
    assert argv[:5] == ["journalctl", "--follow", "--output=json", "--all", "--no-pager"]
    assert "--no-tail" in argv
    assert argv[-5:] == ["_COMM=sshd", "_COMM=sshd-session", "_COMM=sshd-auth", "_COMM=sudo", "_COMM=su"]
    assert not [arg for arg in argv if arg.startswith(("--cursor", "--after-cursor", "--lines", "-n"))]


def test_argv_from_a_position_includes_the_saved_entry() -> None:
    """--cursor (inclusive) rather than --after-cursor, which skips one entry blindly."""
    argv = journalctl_argv(JournalPosition(CURSOR), from_end=True, extra_args=["--directory=/j"], programs=["sshd"])
    assert argv[5:] == [
        f"--output-fields={','.join(journald.OUTPUT_FIELDS)}",
        "--no-tail",
        f"--cursor={CURSOR}",
        "--directory=/j",
        "_COMM=sshd",
    ]


def test_argv_from_the_end() -> None:
    """from_end: no stored entry at all, only new ones."""
    argv = journalctl_argv(None, from_end=True, journalctl="/usr/bin/journalctl")
    assert argv[0] == "/usr/bin/journalctl"
    assert "--lines=0" in argv
    assert "--no-tail" not in argv


def test_programs_as_one_string_is_refused() -> None:
    """A bare string would become one match per character."""
    with pytest.raises(TypeError):
        journalctl_argv(None, programs="sshd")


@pytest.mark.parametrize("programs", [[], [""], ["a-program-name-16"]])
def test_programs_that_cannot_match_are_refused(programs: list[str]) -> None:
    """No programs would follow everything; a name over 15 characters can never equal _COMM."""
    with pytest.raises(ValueError, match=r"programs|_COMM"):
        journalctl_argv(None, programs=programs)


# ------------------------------------------------------------------------------------------ the follower


def fake_journalctl(tmp_path: Path, body: str) -> str:
    """An executable standing in for journalctl: records its argv, then runs ``body`` (Python)."""
    script = tmp_path / "journalctl"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys, time\n"
        f"open({str(tmp_path / 'argv.json')!r}, 'w').write(json.dumps(sys.argv[1:]))\n"
        "out = sys.stdout.buffer\n" + body
    )
    script.chmod(0o755)
    return str(script)


def drain(follower: JournalFollower, timeout: float = 10.0) -> tuple[list[JournalRecord], list[str], SourceError]:
    """Read until the follower fails: the records, the positions of each batch, and the error."""
    records: list[JournalRecord] = []
    positions: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            batch = follower.read_available()
        except SourceError as error:
            return records, positions, error
        if batch is None:
            follower.wait(0.5)
            continue
        assert batch.source == "journal"
        records += batch.records
        positions.append(batch.position.cursor)
    raise AssertionError(f"the follower did not fail within {timeout} s")


def lines_of(*entries: str) -> str:
    """Python for the fake: print ``entries``, one per line."""
    return "".join(f"out.write({(text + chr(10)).encode()!r})\n" for text in entries)


def test_follower_delivers_everything_then_raises_with_stderr(tmp_path: Path) -> None:
    """Entries printed before journalctl exits are all delivered; then JournalctlError with its stderr."""
    body = lines_of(entry(_COMM="sshd", MESSAGE="one"), "garbage", entry(_COMM="sshd", MESSAGE="two")) + (
        "out.flush()\nsys.stderr.write('Journal file x.journal corrupted, ignoring\\n')\nsys.exit(3)\n"
    )
    with JournalFollower(None, journalctl=fake_journalctl(tmp_path, body), programs=["sshd"]) as follower:
        records, positions, error = drain(follower)
        assert [record.message for record in records] == ["one", "two"]
        assert positions[-1] == CURSOR
        assert follower.counts.malformed == 1
        assert isinstance(error, JournalctlError)
        assert error.returncode == 3
        assert error.stderr == "Journal file x.journal corrupted, ignoring"
        assert "status 3" in str(error)
        with pytest.raises(JournalctlError):
            follower.read_available()  # and on every later call
    assert json.loads((tmp_path / "argv.json").read_text())[-1] == "_COMM=sshd"


def test_follower_resumes_after_the_saved_entry_only(tmp_path: Path) -> None:
    """--cursor starts at the saved entry: it is dropped once, the next entries are delivered."""
    saved = entry(_COMM="sshd", MESSAGE="already delivered")
    later = json.dumps({"__CURSOR": "s=1;i=8", "__REALTIME_TIMESTAMP": "1795903330364999", "_COMM": "sshd"})
    follower = JournalFollower(JournalPosition(CURSOR), journalctl=fake_journalctl(tmp_path, lines_of(saved, later)))
    with follower:
        records, positions, _ = drain(follower)
    assert [record.cursor for record in records] == ["s=1;i=8"]
    assert positions == ["s=1;i=8"]
    assert f"--cursor={CURSOR}" in json.loads((tmp_path / "argv.json").read_text())


def test_follower_without_the_saved_entry_loses_nothing(tmp_path: Path) -> None:
    """When the saved entry is gone (vacuumed) the first entry is not dropped, unlike --after-cursor."""
    body = lines_of(entry(_COMM="sshd", MESSAGE="first after a vacuum"))
    follower = JournalFollower(JournalPosition("s=gone;i=1"), journalctl=fake_journalctl(tmp_path, body))
    with follower:
        records, _, _ = drain(follower)
    assert [record.message for record in records] == ["first after a vacuum"]


def test_over_long_lines_are_counted_and_skipped(tmp_path: Path) -> None:
    """A JSON line over MAX_LINE_BYTES is read past and counted, a huge MESSAGE too; the rest flows on."""
    huge = entry(_COMM="sshd", MESSAGE="x" * (journald.MAX_MESSAGE_BYTES + 1))
    body = (
        lines_of(entry(_COMM="sshd", MESSAGE="before"))
        + f"out.write(b'{{\"MESSAGE\":\"' + b'y' * {journald.MAX_LINE_BYTES * 2} + b'\"}}\\n')\n"
        + lines_of(huge, entry(_COMM="sshd", MESSAGE="after"))
    )
    with JournalFollower(None, journalctl=fake_journalctl(tmp_path, body)) as follower:
        records, _, error = drain(follower)
        assert [record.message for record in records] == ["before", "after"]
        assert follower.counts.oversized == 2
        assert isinstance(error, JournalctlError)
        assert error.returncode == 0


def test_unfinished_last_line_is_not_delivered(tmp_path: Path) -> None:
    """An entry cut off by journalctl's exit is dropped (its cursor was never saved, a restart reads it)."""
    body = lines_of(entry(_COMM="sshd", MESSAGE="whole")) + f"out.write({entry(MESSAGE='cut').encode()[:40]!r})\n"
    with JournalFollower(None, journalctl=fake_journalctl(tmp_path, body)) as follower:
        records, _, _ = drain(follower)
        assert [record.message for record in records] == ["whole"]
        assert follower.counts.malformed == 0


def test_missing_journalctl_is_reported_by_read_available(tmp_path: Path) -> None:
    """A journalctl that cannot be started fails the same way as one that exited."""
    with JournalFollower(None, journalctl=str(tmp_path / "no-such-journalctl")) as follower:
        follower.wait(5.0)  # returns at once
        with pytest.raises(JournalctlError, match="cannot run") as caught:
            follower.read_available()
        assert caught.value.returncode is None


def test_slow_consumer_blocks_journalctl_and_loses_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a full buffer the reader thread blocks, so journalctl blocks on its pipe; every entry arrives."""
    monkeypatch.setattr(journald, "BUFFER_BYTES", 4096)
    count = 3000  # about 400 KiB: several times the pipe (64 KiB) plus the buffer
    done = tmp_path / "done"
    body = (
        f"for i in range({count}):\n"
        f"    out.write(json.dumps({{'__CURSOR': f'c{{i}}', '__REALTIME_TIMESTAMP': '1', '_COMM': 'sshd',"
        f" 'MESSAGE': f'line {{i}} ' + 'z' * 100}}).encode() + b'\\n')\n"
        f"out.flush()\nopen({str(done)!r}, 'w').close()\n"
    )
    with JournalFollower(None, journalctl=fake_journalctl(tmp_path, body)) as follower:
        time.sleep(0.5)
        assert not done.exists(), "journalctl wrote everything although nobody read"
        follower.wait(1.0)
        first = follower.read_available(max_records=10)
        assert first is not None
        assert len(first.records) == 10
        records, _, _ = drain(follower)
    assert [record.message.split()[1] for record in first.records + records] == [str(i) for i in range(count)]
    assert done.exists()


def test_close_stops_a_journalctl_blocked_on_its_pipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """close() ends journalctl and the reader even while both wait for a consumer; it is idempotent."""
    monkeypatch.setattr(journald, "BUFFER_BYTES", 1024)
    body = "while True:\n    out.write(b'x' * 1000 + b'\\n')\n"
    follower = JournalFollower(None, journalctl=fake_journalctl(tmp_path, body))
    time.sleep(0.3)
    started = time.monotonic()
    follower.close()
    follower.close()
    assert time.monotonic() - started < 3.0
    proc = follower._proc
    assert proc is not None
    assert proc.returncode is not None
    with pytest.raises(ValueError, match="closed"):
        follower.read_available()


def test_wait_returns_on_output_or_timeout(tmp_path: Path) -> None:
    """wait() sleeps while journalctl is silent and wakes when it prints."""
    body = "time.sleep(0.6)\n" + lines_of(entry(_COMM="sshd", MESSAGE="late")) + "out.flush()\ntime.sleep(30)\n"
    with JournalFollower(None, journalctl=fake_journalctl(tmp_path, body)) as follower:
        started = time.monotonic()
        follower.wait(0.1)
        assert follower.read_available() is None
        follower.wait(10.0)
        assert time.monotonic() - started < 5.0
        batch = follower.read_available()
        assert batch is not None
        assert [record.message for record in batch.records] == ["late"]
        assert follower.position == JournalPosition(CURSOR)


def test_runs_as_argv_not_through_a_shell(tmp_path: Path) -> None:
    """Shell metacharacters in a cursor or an argument reach journalctl as they are."""
    body = "out.flush()\n"
    odd = "s=1;i=2 $(touch pwned) `id`"
    with JournalFollower(JournalPosition(odd), journalctl=fake_journalctl(tmp_path, body)) as follower:
        drain(follower)
    assert f"--cursor={odd}" in json.loads((tmp_path / "argv.json").read_text())
    assert not (Path.cwd() / "pwned").exists()
