"""Typed, immutable events: what the parsers produce and everything downstream consumes.

One :class:`Event` type with a :class:`Kind` enum keeps the hot path cheap (a tuple under the hood)
and lets rules select events by kind without string comparisons scattered through the code.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta, timezone
from typing import NamedTuple


class Outcome(enum.StrEnum):
    """ECS ``event.outcome``-like verdict of one event."""

    FAILURE = "failure"
    SUCCESS = "success"
    INFO = "info"


class Kind(enum.StrEnum):
    """Every message the parsers know, one member per distinct meaning.

    The values are stable: they appear in ``bastionctl parse`` output, rule files and shipped events.
    """

    # sshd: authentication attempts
    AUTH_FAILURE = "auth_failure"  # Failed <method> for [invalid user] U from A port P ssh2
    INVALID_USER = "invalid_user"  # Invalid user U from A port P
    USER_NOT_ALLOWED = "user_not_allowed"  # User U from A not allowed because ...
    ROOT_LOGIN_REFUSED = "root_login_refused"  # ROOT LOGIN REFUSED FROM A
    MAX_AUTH_EXCEEDED = "max_auth_exceeded"  # error: maximum authentication attempts exceeded ...
    TOO_MANY_AUTH_FAILURES = "too_many_auth_failures"  # Disconnecting ...: Too many authentication failures
    KEY_REVOKED = "key_revoked"  # Authentication key T SHA256:F revoked by file K
    AUTH_SUCCESS = "auth_success"  # Accepted <method> for U from A port P ssh2[: T SHA256:F]
    # sshd: connections that ended before authentication
    PREAUTH_CLOSE = "preauth_close"  # Connection closed/reset by ... [preauth]; Disconnected from ... [preauth]
    PREAUTH_DISCONNECT = "preauth_disconnect"  # Received disconnect from A port P:N: reason [preauth]
    PREAUTH_TIMEOUT = "preauth_timeout"  # Timeout before authentication for A port P
    HANDSHAKE_ERROR = "handshake_error"  # kex_exchange_identification, banner exchange, no identification string
    NEGOTIATION_FAILURE = "negotiation_failure"  # Unable to negotiate with A port P: no matching ...
    PENALTY_DROP = "penalty_drop"  # drop connection #N from [A]:P on [B]:Q penalty: ...
    # sshd: connection and session life cycle
    CONNECTION = "connection"  # Connection from A port P on B port Q (LogLevel VERBOSE)
    DISCONNECT = "disconnect"  # Received disconnect / Disconnected from user U A port P (after auth)
    SESSION_OPENED = "session_opened"  # pam_unix(sshd:session): session opened for user U
    SESSION_CLOSED = "session_closed"  # pam_unix(sshd:session): session closed for user U
    REVERSE_MAPPING = "reverse_mapping"  # reverse DNS of the client does not map back (UseDNS yes)
    # PAM lines that repeat an sshd verdict (one login attempt, two lines): not counted by default rules
    PAM_AUTH_FAILURE = "pam_auth_failure"  # pam_unix(sshd:auth): authentication failure; ... rhost=A
    PAM_ERROR = "pam_error"  # error: PAM: Authentication failure for U from A
    PAM_MORE_FAILURES = "pam_more_failures"  # PAM N more authentication failures; ... rhost=A
    # privilege changes
    SUDO_COMMAND = "sudo_command"  # sudo: U : TTY=... ; PWD=... ; USER=... ; COMMAND=...
    SUDO_FAILURE = "sudo_failure"  # sudo: U : N incorrect password attempts / NOT in sudoers / pam failure
    SU_SESSION = "su_session"  # su: (to T) U on TTY; pam_unix(su:session): session opened
    SU_FAILURE = "su_failure"  # su: FAILED SU (to T) U on TTY; pam_unix(su:auth): authentication failure


class Event(NamedTuple):
    """One parsed log line.

    ``epoch`` is the event time in seconds since the Unix epoch (UTC); ``utc_offset`` is the offset the
    log line carried (or the one assumed for it), in seconds, so :attr:`timestamp` can rebuild the
    timezone-aware time exactly as it was written. Rules work on ``epoch`` alone.

    ``ip`` is a canonical IP address (``::ffff:1.2.3.4`` is ``1.2.3.4``) or ``None``; a client logged by
    name under ``UseDNS yes`` lands in ``client_host`` and never in ``ip``: names come from the
    attacker's own reverse DNS and are never resolved or banned.
    """

    epoch: float
    utc_offset: int
    host: str | None
    program: str
    pid: int | None
    kind: Kind
    outcome: Outcome
    ip: str | None
    port: int | None
    user: str | None
    method: str | None = None
    key_type: str | None = None
    fingerprint: str | None = None
    cert_id: str | None = None
    cert_serial: int | None = None
    client_host: str | None = None
    user_valid: bool | None = None
    attributed_by: str | None = None  # "line", "connection" (same sshd pid earlier) or None
    detail: str | None = None
    repeat: int = 1  # "message repeated N times: [ ... ]" stands for N attempts
    source: str = ""
    position: int = 0
    raw: str = ""

    @property
    def timestamp(self) -> datetime:
        """The timezone-aware event time, in the offset the line was written with."""
        tz = UTC if self.utc_offset == 0 else timezone(timedelta(seconds=self.utc_offset))
        return datetime.fromtimestamp(self.epoch, tz)

    def located(self, source: str, position: int, raw: str) -> Event:
        """The same event with its provenance filled in."""
        return self._replace(source=source, position=position, raw=raw)
