"""Pieces shared by the per-program message catalogues."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from bastion_guard.events import Event, Kind, Outcome
from bastion_guard.parsing.addresses import canonical_ip
from bastion_guard.parsing.context import ConnectionContext
from bastion_guard.parsing.envelope import Envelope
from bastion_guard.parsing.status import LineStatus

# sshd prints user names with "%.100s": a visible user field longer than this holds escape sequences
# (\ooo for each non-printable byte), which is how an attacker pads a line until sshd or syslog cuts off
# the real address and leaves a decoy at the visible end. Such a line is attributed only through the
# connection context, never from its text.
MAX_PLAIN_USER_LENGTH = 100

Result = Event | LineStatus
Builder = Callable[[re.Match[str], Envelope, bool, ConnectionContext], Result]


@dataclass(frozen=True, slots=True)
class Message:
    """One known message shape: the regex for the message body and the function that builds the event."""

    regex: re.Pattern[str]
    build: Builder


# The resolved client of a line: ``(ip, port, host, by)`` -- canonical address, port, reverse-DNS name
# and how it was found ("line", "connection" or None). A plain tuple rather than a class because one is
# made for nearly every line, and event() only unpacks it.
Client = tuple[str | None, int | None, str | None, str | None]

_NOBODY: Client = (None, None, None, None)
_UNKNOWN_HOSTS = ("UNKNOWN", "unknown")


def attribute(
    env: Envelope,
    ctx: ConnectionContext,
    address: str | None,
    port: str | None,
    trusted: bool = True,
) -> Client:
    """Resolve the client of a line from its own text (when ``trusted``) or from the connection context.

    A numeric address from a trusted position is remembered for the connection. A DNS name is kept as a
    name; the numeric address then comes from the context if the connection logged one.
    """
    if trusted and address:
        # split_client() inlined: ``address`` is non-empty here, so it is an IP, a name or "UNKNOWN".
        ip = canonical_ip(address)
        port_number = int(port) if port else None
        if ip is not None:
            ctx.remember(env.host, env.pid, ip, port_number, env.epoch)
            return (ip, port_number, None, "line")
        name = None if address in _UNKNOWN_HOSTS else address
        known = ctx.lookup(env.host, env.pid, env.epoch)
        if known is not None:
            return (known[0], known[1], name, "connection")
        return (None, port_number, name, None)
    known = ctx.lookup(env.host, env.pid, env.epoch)
    if known is not None:
        return (known[0], known[1], None, "connection")
    return _NOBODY


_new_tuple = tuple.__new__


def user_is_trustworthy(user: str | None) -> bool:
    """Whether a user field is short enough that the line cannot have been cut behind it."""
    return user is None or len(user) <= MAX_PLAIN_USER_LENGTH


def event(
    env: Envelope,
    kind: Kind,
    outcome: Outcome,
    client: Client,
    user: str | None,
    *,
    method: str | None = None,
    key_type: str | None = None,
    fingerprint: str | None = None,
    cert_id: str | None = None,
    cert_serial: int | None = None,
    user_valid: bool | None = None,
    detail: str | None = None,
) -> Event:
    """Build an :class:`Event` from an envelope and the parts a catalogue entry found."""
    ip, port, client_host, attributed_by = client
    epoch, utc_offset, host, program, pid, _message, raw, source, position = env
    # tuple.__new__ skips Event's generated Python-level __new__ (one frame per event); the field order
    # is Event's own, spelled out in full so a change to Event shows up here in review.
    return _new_tuple(
        Event,
        (
            epoch, utc_offset, host, program, pid, kind, outcome, ip, port, user, method, key_type,
            fingerprint, cert_id, cert_serial, client_host, user_valid, attributed_by, detail, 1,
            source, position, raw,
        ),
    )


def dispatch_table(entries: dict[str, tuple[Message, ...]]) -> dict[str, tuple[Message, ...]]:
    """Freeze a ``first word -> candidate messages`` table (a plain dict, visible to grep and mypy)."""
    return dict(entries)


def match_first(
    candidates: tuple[Message, ...], body: str, env: Envelope, preauth: bool, ctx: ConnectionContext
) -> Result | None:
    """Build from the first candidate whose regex matches the whole body, or ``None``."""
    for candidate in candidates:
        match = candidate.regex.fullmatch(body)
        if match is not None:
            return candidate.build(match, env, preauth, ctx)
    return None


def noise(_m: re.Match[str], _env: Envelope, _preauth: bool, _ctx: ConnectionContext) -> Result:
    """Builder for known messages that carry nothing to act on."""
    return LineStatus.NOISE
