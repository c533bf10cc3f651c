"""The syslog envelope: when, which host, which program and pid; the message body is left alone.

Forms recognised, each as written by real systems:

- RFC 3339 (Debian 12 rsyslog default): ``2026-11-28T20:02:18.053767+00:00 host sshd[19484]: MSG``
- traditional / RHEL ``/var/log/secure``: ``Nov 28 19:51:34 host sshd[19484]: MSG`` (host optional)
- RFC 5424: ``<38>1 2019-07-08T17:40:16.954167-04:00 host sshd 57915 - [sd...] MSG``
- journal "short" without a stamp: ``host sshd[19484]: MSG``
- bare ``sshd -E FILE`` lines: ``MSG`` alone; the program is taken to be sshd.

Only the message body is attacker-influenced, and it is always the last field, so the envelope can be
anchored at the start of the line.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from bastion_guard.parsing.timestamps import FRACTION_SCALE, TimestampReader

# Program names are short tokens; a colon or bracket ends them.
_PROGRAM = r"([A-Za-z0-9_.()/-]+?)"
_PID = r"(?:\[(\d{1,10})\])?"

_RFC3339 = re.compile(
    r"(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d)(?:[.,](\d{1,9}))?(Z|[+-]\d\d:?\d\d)? "
    r"(?:(\S+) )?" + _PROGRAM + _PID + r": ?(.*)",
    re.DOTALL,
)
_TRADITIONAL = re.compile(
    r"([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d\d:\d\d:\d\d)(?:\.\d+)? "
    r"(?:([^\s\[\]]+) )?(?:" + _PROGRAM + _PID + r"|\[([A-Za-z0-9_-]+)\]):? (.*)",
    re.DOTALL,
)
_RFC5424 = re.compile(
    r"<\d{1,3}>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d) "
    r"(\S+) (\S+) (\S+) \S+ (?:-|(?:\[(?:[^\]\\\"]|\\.|\"(?:[^\"\\]|\\.)*\")*\])+) ?(.*)",
    re.DOTALL,
)
_SHORT = re.compile(r"(?:([^\s\[\]:]+) )?" + _PROGRAM + r"\[(\d{1,10})\]: (.*)", re.DOTALL)
# A Solaris / illumos tag some sshd builds put in front of the message.
_SOLARIS_TAG = re.compile(r"\[ID \d+ [a-z]+\.[a-z]+\] ")


class Envelope(NamedTuple):
    """What the syslog header says about a line."""

    epoch: float
    utc_offset: int
    host: str | None
    program: str
    pid: int | None
    message: str
    raw: str = ""
    source: str = ""
    position: int = 0


_new_tuple = tuple.__new__
_STAMP_CACHE_LIMIT = 1 << 15


class EnvelopeReader:
    """Split lines into :class:`Envelope`; stamps are read with a shared :class:`TimestampReader`."""

    __slots__ = ("_default_program", "_stamps", "_times")

    def __init__(self, times: TimestampReader, default_program: str = "sshd") -> None:
        self._times = times
        self._default_program = default_program
        self._stamps: dict[str, tuple[float, int] | None] = {}  # RFC 3339 whole seconds, see read()

    def read(self, line: str, source: str = "", position: int = 0) -> Envelope | None:
        """Return the envelope of ``line``, or ``None`` if the line has no recognisable one.

        ``source`` and ``position`` (byte offset or line number) travel with the envelope into events.
        Each form builds its :class:`Envelope` complete in one go (no ``_replace`` per line).
        """
        first = line[:1]
        if first.isdigit():
            # RFC 3339 is what nearly every line of a modern auth.log looks like: parsed right here
            # rather than in a helper, one call frame less per line.
            match = _RFC3339.match(line)
            if match is None:
                return None
            seconds, fraction, offset, host, program, pid, message = match.groups()
            # Whole-second stamps cached by their text as written: one dict lookup for most lines.
            second_key = seconds + offset if offset else seconds  # seconds is fixed-width: unambiguous
            stamps = self._stamps
            try:
                stamp = stamps[second_key]
            except KeyError:
                stamp = self._times.rfc3339(seconds, offset)
                if len(stamps) >= _STAMP_CACHE_LIMIT:
                    stamps.clear()
                stamps[second_key] = stamp
            if stamp is None:
                return None
            epoch = stamp[0]
            if fraction:  # the same float TimestampReader.iso() computes; the regex allows 1..9 digits
                epoch += int(fraction) / FRACTION_SCALE[len(fraction)]
            if message.startswith("[ID "):
                message = _untag(message)
            # tuple.__new__ builds the NamedTuple without its generated Python-level __new__ frame.
            return _new_tuple(
                Envelope,
                (epoch, stamp[1], host, program, int(pid) if pid else None, message, line, source, position),
            )
        if first == "<":
            return self._rfc5424(line, source, position)
        envelope = self._traditional(line, source, position) if first.isupper() else None
        if envelope is None:
            envelope = self._short(line, source, position)
        return envelope

    def bare(self, line: str, source: str = "", position: int = 0) -> Envelope:
        """Treat ``line`` as a message written by ``sshd -E``: no stamp, no host, no pid."""
        return Envelope(
            self._times.reference, 0, None, self._default_program, None, line, line, source, position
        )

    def _traditional(self, line: str, source: str, position: int) -> Envelope | None:
        match = _TRADITIONAL.match(line)
        if match is None:
            return None
        month, day, clock, host, program, pid, bracketed, message = match.groups()
        stamp = self._times.traditional(month, day, clock)
        if stamp is None:
            return None
        return Envelope(
            stamp[0], stamp[1], host, program or bracketed, int(pid) if pid else None, _untag(message),
            line, source, position,
        )

    def _rfc5424(self, line: str, source: str, position: int) -> Envelope | None:
        match = _RFC5424.match(line)
        if match is None:
            return None
        seconds, fraction, offset, host, program, pid, message = match.groups()
        stamp = self._times.iso(seconds, fraction, offset)
        if stamp is None:
            return None
        if message.startswith("\ufeff"):  # RFC 5424 allows a BOM before a UTF-8 message
            message = message[1:]
        return Envelope(
            stamp[0], stamp[1], _nil(host), program, int(pid) if pid.isdigit() else None, message,
            line, source, position,
        )

    def _short(self, line: str, source: str, position: int) -> Envelope | None:
        match = _SHORT.match(line)
        if match is None:
            return None
        host, program, pid, message = match.groups()
        return Envelope(
            self._times.reference, 0, host, program, int(pid), _untag(message), line, source, position
        )


def _untag(message: str) -> str:
    if message.startswith("[ID "):
        match = _SOLARIS_TAG.match(message)
        if match is not None:
            return message[match.end() :]
    return message


def _nil(value: str) -> str | None:
    return None if value == "-" else value
