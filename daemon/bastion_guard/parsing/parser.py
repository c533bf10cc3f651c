"""The line parser: envelope, then the catalogue of the program that wrote the line.

Pure and synchronous: no I/O, no clock. The only state is the bounded connection context (which sshd
process serves which client) and the timestamp caches, both owned by one :class:`LineParser`, so each
log source gets its own parser and a replay of a file behaves exactly like following it live.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import tzinfo

from bastion_guard.events import Event
from bastion_guard.parsing.audit import parse_audit
from bastion_guard.parsing.context import ConnectionContext
from bastion_guard.parsing.dropbear import parse_dropbear
from bastion_guard.parsing.envelope import Envelope, EnvelopeReader
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


class LineParser:
    """Parse the lines of one log source, in order.

    ``reference`` anchors the year of traditional stamps (see :mod:`.timestamps`) and stands in for the
    time of lines that carry none (``sshd -E`` output, journal short format).
    """

    __slots__ = ("_context", "_envelopes", "_read", "_times")

    def __init__(self, reference: float, zone: tzinfo | None = None) -> None:
        self._times = TimestampReader(reference, zone)
        self._envelopes = EnvelopeReader(self._times)
        self._read = self._envelopes.read  # bound once: parse() runs for every line
        self._context = ConnectionContext()

    def advance_clock(self, epoch: float) -> None:
        """Tell the parser what time it is now (while following a live log)."""
        self._times.advance(epoch)

    def parse(self, line: str, source: str = "", position: int = 0) -> Event | LineStatus:
        """Parse one line (without its newline) into an :class:`Event` or the reason there is none."""
        if len(line) > MAX_LINE_CHARS:
            return LineStatus.OVERSIZED
        envelope = self._read(line, source, position)
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
