"""The line parser: envelope, then the catalogue of the program that wrote the line.

Pure and synchronous: no I/O, no clock. The only state is the bounded connection context (which sshd
process serves which client) and the timestamp caches, both owned by one :class:`LineParser`, so each
log source gets its own parser and a replay of a file behaves exactly like following it live.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import tzinfo
from typing import Protocol

from bastion_guard.events import Event
from bastion_guard.parsing.audit import parse_audit
from bastion_guard.parsing.context import ConnectionContext
from bastion_guard.parsing.dropbear import parse_dropbear
from bastion_guard.parsing.envelope import Envelope, EnvelopeReader, untag
from bastion_guard.parsing.privilege import parse_su, parse_sudo
from bastion_guard.parsing.sshd import parse_sshd
from bastion_guard.parsing.status import LineStatus
from bastion_guard.parsing.timestamps import TimestampReader

# No sshd, PAM or sudo line comes near this; longer lines are counted and skipped, never parsed.
MAX_LINE_CHARS = 16 * 1024

ProgramParser = Callable[[Envelope, ConnectionContext], Event | LineStatus]

PROGRAMS: dict[str, ProgramParser] = {
    "sshd": parse_sshd,
    "sshd-session": parse_sshd,  # OpenSSH 9.8+: per-connection process
    "sshd-auth": parse_sshd,  # OpenSSH 10: pre-authentication process
    "sudo": parse_sudo,
    "su": parse_su,
    "dropbear": parse_dropbear,
    "sshd(pam_unix)": lambda envelope, context: parse_sshd(
        envelope._replace(message="(pam_unix) " + envelope.message), context
    ),  # RHEL 4/5 era: PAM named itself in the tag
}

_REPEATED = re.compile(r"message repeated (\d+) times: \[ ?(.*?) ?\]", re.DOTALL)
_new_tuple = tuple.__new__


class ParseFunction(Protocol):
    """The signature of :attr:`LineParser.parse`."""

    def __call__(self, line: str, source: str = "", position: int = 0) -> Event | LineStatus:
        """Parse one line (without its newline) into an :class:`Event` or the reason there is none."""


class LineParser:
    """Parse the lines of one log source, in order.

    ``reference`` anchors the year of traditional stamps (see :mod:`.timestamps`) and stands in for the
    time of lines that carry none (``sshd -E`` output, journal short format). ``context`` replaces the
    parser's own connection context: the native hot path (:mod:`bastion_guard.native`) passes the one it
    shares with this parser, so lines parsed on either side see one history.
    """

    __slots__ = ("_context", "_envelopes", "_times", "parse")

    # Parse one line (without its newline) into an Event or the reason there is none:
    # ``parse(line, source="", position=0)``. An attribute rather than a method: see _make_parse().
    parse: ParseFunction

    def __init__(
        self, reference: float, zone: tzinfo | None = None, context: ConnectionContext | None = None
    ) -> None:
        self._times = TimestampReader(reference, zone)
        self._envelopes = EnvelopeReader(self._times)
        self._context = ConnectionContext() if context is None else context
        self.parse = self._make_parse()

    def advance_clock(self, epoch: float) -> None:
        """Tell the parser what time it is now (while following a live log)."""
        self._times.advance(epoch)

    def _make_parse(self) -> ParseFunction:
        """Build this parser's ``parse`` function.

        It runs once per line, so it is a closure: everything it touches is a local or a cell, not an
        attribute looked up per line, and callers reach it without a bound-method hop. The common RFC 3339
        line is split with ``str.split`` against tables the envelope regex filled (:class:`FastTables`,
        which explains why the result is the regex's); any other line takes :meth:`_slow`, the regex path.
        """
        fast = self._envelopes.fast
        seconds_get = fast.seconds.get
        hosts = fast.hosts
        tags_get = fast.tags.get
        new_second = fast.second
        new_tag = fast.tag
        programs_get = PROGRAMS.get
        context = self._context
        slow = self._slow
        repeated = self._repeated
        oversized = LineStatus.OVERSIZED
        other_program = LineStatus.OTHER_PROGRAM

        def parse(line: str, source: str = "", position: int = 0) -> Event | LineStatus:
            if len(line) > MAX_LINE_CHARS:
                return oversized
            parts = line.split(" ", 3)
            if len(parts) == 4:
                stamp, host, tag, message = parts
                # (offset text, stamp length, epoch, utc_offset); a new second of a known minute (one
                # line in four at 4 lines/s) and a new process's tag are worked out without the regex.
                second = seconds_get(stamp[:19]) or new_second(stamp)
                tagged = tags_get(tag) or new_tag(tag)  # (program, pid)
                fraction = stamp[20:26]
                if (
                    second is not None and tagged is not None and len(stamp) == second[1] and stamp[19] == "."
                    and stamp.endswith(second[0]) and host in hosts
                    and fraction.isdecimal()  # isdecimal() is exactly what the regex's \d accepts
                ):
                    handler = programs_get(tagged[0])
                    if handler is None:
                        return other_program
                    if message.startswith("[ID "):
                        message = untag(message)
                    # The Envelope read() builds for this line, field for field (epoch as in read()).
                    envelope = _new_tuple(
                        Envelope,
                        (
                            second[2] + int(fraction) / 1_000_000, second[3], host, tagged[0], tagged[1],
                            message, line, source, position,
                        ),
                    )
                    if message.startswith("message repeated "):
                        return repeated(envelope, handler)
                    return handler(envelope, context)
            return slow(line, source, position)

        return parse

    def _slow(self, line: str, source: str, position: int) -> Event | LineStatus:
        """Every line through the envelope regexes (and what a line without an envelope may be)."""
        envelope = self._envelopes.read(line, source, position)
        if envelope is None:
            if line.startswith("type="):
                return parse_audit(line, source, position, self._context)
            # Not syslog: perhaps a bare "sshd -E" line. Anything else is a format we do not know.
            result = parse_sshd(self._envelopes.bare(line, source, position), self._context)
            return LineStatus.MALFORMED if result is LineStatus.UNMATCHED else result
        program = PROGRAMS.get(envelope[3])  # envelope.program; index access skips the descriptor
        if program is None:
            return LineStatus.OTHER_PROGRAM
        if envelope[5].startswith("message repeated "):  # envelope.message
            return self._repeated(envelope, program)
        return program(envelope, self._context)

    def parse_record(
        self,
        program: str,
        message: str,
        *,
        epoch: float,
        host: str | None = None,
        pid: int | None = None,
        source: str = "",
        position: int = 0,
    ) -> Event | LineStatus:
        """Parse a message whose envelope arrived as structured fields (a journal entry).

        ``program`` should come from a field the sender cannot forge (the journal's ``_COMM``), not from
        the syslog identifier any local user can set with ``logger -t sshd``.
        """
        if len(message) > MAX_LINE_CHARS:
            return LineStatus.OVERSIZED
        handler = PROGRAMS.get(program)
        if handler is None:
            return LineStatus.OTHER_PROGRAM
        envelope = Envelope(epoch, 0, host, program, pid, message, message, source, position)
        if message.startswith("message repeated "):
            return self._repeated(envelope, handler)
        return handler(envelope, self._context)

    def _repeated(self, envelope: Envelope, program: ProgramParser) -> Event | LineStatus:
        """rsyslog folds identical lines into "message repeated N times: [ MSG]": N attempts, one line."""
        match = _REPEATED.fullmatch(envelope.message)
        if match is None:
            return LineStatus.UNMATCHED
        result = program(envelope._replace(message=match[2]), self._context)
        if isinstance(result, Event):
            return result._replace(repeat=int(match[1]))
        return result
