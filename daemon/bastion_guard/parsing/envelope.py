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
_PID_DIGITS = r"(\d{1,10})"
_PID = r"(?:\[" + _PID_DIGITS + r"\])?"

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
# The "PROGRAM[PID]:" field of the fast path (see FastTables), from the same fragments.
_TAG = re.compile(_PROGRAM + r"\[" + _PID_DIGITS + r"\]:")
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
# Bound of each table the fast path learns from (see FastTables): a host runs a few thousand sshd
# processes at a time, so a reset now and then costs one regex parse per live tag.
_FAST_TABLE_LIMIT = 1 << 14


class FastTables:
    r"""What the RFC 3339 regex has established, so that most lines need no regex to be split.

    The dominant line shape is ``STAMP HOST PROGRAM[PID]: MESSAGE`` with a microsecond stamp
    (``2026-11-28T20:02:18.053767+00:00``). The parser splits such a line with ``line.split(" ", 3)``
    and looks its parts up here:

    - ``seconds``: ``"2026-11-28T20:02:18"`` -> ``(offset text, stamp length, epoch, utc_offset)``: the
      whole-second stamp; the offset text is the offset group as written ("" when absent);
    - ``minutes``: the same per minute, which :meth:`second` turns into a new second's entry exactly as
      :meth:`TimestampReader.rfc3339` does (minute epoch + seconds, seconds 00..59);
    - ``hosts``: host fields the regex captured (so each is ``\S+``);
    - ``tags``: ``"sshd[19484]:"`` -> ``("sshd", 19484)``, checked by :meth:`tag` against :data:`_TAG`,
      which is built from the same program and pid fragments as the envelope regexes.

    A line whose parts are all found here (and whose fraction is six decimal digits after a ".") is
    split by :data:`_RFC3339` in the same way: the stamp can be read only one way, the optional host
    group is tried first and ``\S+`` stops at the space, the lazy program cannot stop before the ``[``
    (program characters exclude ``[`` and ``:``), and ``: ?`` takes the one space before the message.
    Any other line goes to the regex. Stamps and hosts are only ever learned from the regex's own
    groups. Each table is emptied when it reaches its bound.
    """

    __slots__ = ("hosts", "minutes", "seconds", "tags")

    def __init__(self) -> None:
        self.seconds: dict[str, tuple[str, int, float, int]] = {}
        self.minutes: dict[str, tuple[str, int, float, int]] = {}
        self.hosts: set[str] = set()
        self.tags: dict[str, tuple[str, int]] = {}

    def learn(self, times: TimestampReader, seconds: str, offset: str | None, host: str) -> None:
        """Record the stamp minute and host of a line the regex parsed (it has the fast shape)."""
        minutes = self.minutes
        if len(minutes) >= _FAST_TABLE_LIMIT:
            minutes.clear()
        minute = times.rfc3339(seconds[:17] + "00", offset)
        if minute is not None:
            text = offset or ""
            minutes[seconds[:16]] = (text, 26 + len(text), minute[0], minute[1])
        if host not in self.hosts:
            if len(self.hosts) >= _FAST_TABLE_LIMIT:
                self.hosts.clear()
            self.hosts.add(host)

    def second(self, stamp: str) -> tuple[str, int, float, int] | None:
        """The ``seconds`` entry for ``stamp`` from its minute's, or ``None`` if the minute is unknown."""
        minute = self.minutes.get(stamp[:16])
        if minute is None or len(stamp) < 26 or stamp[16] != ":":
            return None
        digits = stamp[17:19]
        # \d\d is what the regex accepts (isdecimal() is \d); past 59 the regex path rejects the stamp
        if not digits.isdecimal() or int(digits) > 59:
            return None
        entry = (minute[0], minute[1], minute[2] + int(digits), minute[3])  # as TimestampReader._second
        table = self.seconds
        if len(table) >= _FAST_TABLE_LIMIT:
            table.clear()
        table[stamp[:19]] = entry
        return entry

    def tag(self, tag: str) -> tuple[str, int] | None:
        """``("sshd", 19484)`` for ``"sshd[19484]:"``, or ``None`` if it is not of that form."""
        match = _TAG.fullmatch(tag)
        if match is None:
            return None
        program, pid = match.groups()
        result = (program, int(pid))
        tags = self.tags
        if len(tags) >= _FAST_TABLE_LIMIT:
            tags.clear()
        tags[tag] = result
        return result


class EnvelopeReader:
    """Split lines into :class:`Envelope`; stamps are read with a shared :class:`TimestampReader`."""

    __slots__ = ("_default_program", "_stamps", "_times", "fast")

    def __init__(self, times: TimestampReader, default_program: str = "sshd") -> None:
        self._times = times
        self._default_program = default_program
        self._stamps: dict[str, tuple[float, int] | None] = {}  # RFC 3339 whole seconds, see read()
        self.fast = FastTables()

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
            if (
                host is not None and fraction is not None and len(fraction) == 6 and line[10] == "T"
                and line[19] == "."
            ):
                self.fast.learn(self._times, seconds, offset, host)
            if message.startswith("[ID "):
                message = untag(message)
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
            stamp[0], stamp[1], host, program or bracketed, int(pid) if pid else None, untag(message),
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
            self._times.reference, 0, host, program, int(pid), untag(message), line, source, position
        )


def untag(message: str) -> str:
    """Drop a Solaris ``[ID 800047 auth.info]`` tag from the front of a message."""
    if message.startswith("[ID "):
        match = _SOLARIS_TAG.match(message)
        if match is not None:
            return message[match.end() :]
    return message


def _nil(value: str) -> str | None:
    return None if value == "-" else value
