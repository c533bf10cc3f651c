"""Syslog envelopes: every form a bastion writes, and the year of stamps that have none."""

from __future__ import annotations

from datetime import UTC, datetime

from bastion_guard.events import Event, Kind
from bastion_guard.parsing import LineParser

MSG = "Invalid user bob from 192.0.2.9 port 22"


def _event(parser: LineParser, line: str) -> Event:
    result = parser.parse(line)
    assert isinstance(result, Event), result
    return result


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def test_rfc3339_keeps_offset_and_microseconds() -> None:
    """A Debian 12 stamp keeps its own offset; the event time is exact to the microsecond."""
    parser = LineParser(_epoch("2026-11-28T21:00:00+00:00"), UTC)
    event = _event(parser, f"2026-11-28T20:02:18.053767+01:00 vm sshd[1]: {MSG}")
    assert event.timestamp.isoformat() == "2026-11-28T20:02:18.053767+01:00"
    assert event.epoch == _epoch("2026-11-28T19:02:18.053767+00:00")
    assert (event.host, event.program, event.pid) == ("vm", "sshd", 1)


def test_traditional_year_inference_across_new_year() -> None:
    """Read on 2 January, December lines belong to the old year and January lines to the new."""
    parser = LineParser(_epoch("2027-01-02T08:00:00+00:00"), UTC)
    december = _event(parser, f"Dec 31 23:59:59 vm sshd[1]: {MSG}")
    january = _event(parser, f"Jan  1 00:00:01 vm sshd[1]: {MSG}")
    assert december.timestamp.year == 2026
    assert january.timestamp.year == 2027
    assert january.epoch - december.epoch == 2


def test_traditional_line_slightly_ahead_of_the_reference() -> None:
    """A January line seen on 31 December (a clock a little ahead) is in the coming year, not a year ago."""
    parser = LineParser(_epoch("2026-12-31T23:59:50+00:00"), UTC)
    assert _event(parser, f"Jan  1 00:00:05 vm sshd[1]: {MSG}").timestamp.year == 2027


def test_other_forms() -> None:
    """RFC 5424, journal short, RHEL without host, bracketed tags and bare sshd -E lines all parse."""
    parser = LineParser(_epoch("2026-11-28T21:00:00+00:00"), UTC)
    forms = [
        f"<38>1 2019-07-08T17:40:16.954167-04:00 host.example.com sshd 57915 - - {MSG}",
        f'<38>1 2019-07-08T17:40:17Z h sshd 55555 - [timeQuality tzKnown="1"][x@1 t="[b]"] {MSG}',
        f"srv sshd[13709]: {MSG}",
        f"Nov 23 21:50:19 sshd[8148]: {MSG}",
        f"Jun 25 23:53:34 [sshd] {MSG}",
        f"Mar 29 05:59:23 dusky sshd[20878]: [ID 800047 auth.info] {MSG}",
        MSG,
    ]
    for line in forms:
        event = _event(parser, line)
        assert (event.kind, event.ip, event.user) == (Kind.INVALID_USER, "192.0.2.9", "bob"), line
