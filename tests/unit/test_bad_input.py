"""Bad input is counted and skipped; nothing after it is lost and nothing crashes."""

from __future__ import annotations

import io
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from bastion_guard.events import Event
from bastion_guard.parsing import LineParser, LineStatus
from bastion_guard.reading import iter_lines
from bastion_guard.replay import replay_stream
from bastion_guard.rules import load_rules

GOOD = b"2026-11-28T20:02:18.053767+00:00 vm sshd[7]: Failed password for root from 192.0.2.50 port 1 ssh2"
RULES = Path(__file__).resolve().parents[2] / "rules"


def test_garbage_between_good_lines_loses_nothing() -> None:
    """Binary junk, NULs, invalid UTF-8, a 1 MB line and a truncated line do not hide the good lines."""
    junk = [
        bytes(b for b in range(256) if b != 0x0A),
        b"\x00\x00\x00sshd[1]: \x00",
        b"2026-11-28T20:02:18+00:00 vm sshd[7]: Invalid user \xff\xfe\xc3 from 192.0.2.51 port 2",
        b"x" * (1 << 20),
        b"2026-11-28T20:02:18.05",
        b"Nov 28 20:02:1",
        b"\r",
    ]
    data = b"\n".join([part for chunk in junk for part in (GOOD, chunk)] + [GOOD])
    report = replay_stream(io.BytesIO(data), "junk", 1795899600.0, load_rules(RULES))
    assert report.lines == 2 * len(junk) + 1
    assert report.events_by_kind["auth_failure"] == len(junk) + 1
    assert report.events_by_kind["invalid_user"] == 1
    assert report.statuses["oversized"] == 1


def test_invalid_utf8_is_kept_visible() -> None:
    """Invalid bytes in a user name survive as \\xNN escapes, and the address is still right."""
    (line,) = list(iter_lines(io.BytesIO(b"Invalid user a\xffb from 192.0.2.1 port 5\n")))
    event = LineParser(0.0).parse(line.text)
    assert isinstance(event, Event)
    assert (event.user, event.ip) == ("a\\xffb", "192.0.2.1")


def test_last_line_without_newline_is_read() -> None:
    """A file cut mid-write still yields its last, unterminated line."""
    lines = list(iter_lines(io.BytesIO(b"one\ntwo"), chunk_bytes=2))
    assert [(line.number, line.offset, line.text) for line in lines] == [(1, 0, "one"), (2, 4, "two")]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_any_bytes_parse_without_error(data: bytes) -> None:
    """Arbitrary bytes never raise: every line becomes an event or a status."""
    parser = LineParser(0.0)
    for line in iter_lines(io.BytesIO(data)):
        assert isinstance(parser.parse(line.text), Event | LineStatus)
