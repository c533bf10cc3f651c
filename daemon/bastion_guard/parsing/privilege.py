"""sudo and su: who ran what as whom, and who failed to become someone else.

These lines are written by local programs about local users, so they carry no client address; the
attacker here is a local account, and the user names come from the password database, not from input.
"""

from __future__ import annotations

import re

from bastion_guard.events import Kind, Outcome
from bastion_guard.parsing.common import Message, Result, attribute, event, match_first, noise
from bastion_guard.parsing.context import ConnectionContext
from bastion_guard.parsing.envelope import Envelope
from bastion_guard.parsing.pam import PAM_MESSAGES
from bastion_guard.parsing.status import LineStatus


def _sudo(m: re.Match[str], env: Envelope, preauth: bool, ctx: ConnectionContext) -> Result:
    client = attribute(env, ctx, None, None, trusted=False)
    problem = m["problem"]
    detail = f"{m['target']}: {m['command']}"
    if problem:
        return event(env, Kind.SUDO_FAILURE, Outcome.FAILURE, client, m["user"], detail=f"{problem}; {detail}")
    return event(env, Kind.SUDO_COMMAND, Outcome.SUCCESS, client, m["user"], detail=detail)


def _su(m: re.Match[str], env: Envelope, preauth: bool, ctx: ConnectionContext) -> Result:
    client = attribute(env, ctx, None, None, trusted=False)
    failed = bool(m["failed"])
    kind = Kind.SU_FAILURE if failed else Kind.SU_SESSION
    outcome = Outcome.FAILURE if failed else Outcome.SUCCESS
    return event(env, kind, outcome, client, m["user"], detail=f"to {m['target']}")


_SUDO_MESSAGES: tuple[Message, ...] = (
    Message(
        re.compile(
            r"\s*(?P<user>\S+) : (?:(?P<problem>[^;]*?) ; )?TTY=\S* ; PWD=.*? ; USER=(?P<target>\S+) ;"
            r"(?: GROUP=\S+ ;)?(?: TSID=\S+ ;)?(?: ENV=.*? ;)? COMMAND=(?P<command>.*)",
            re.DOTALL,
        ),
        _sudo,
    ),
    Message(re.compile(r"\s*\S+ : (?:unable to resolve host|a password is required).*", re.DOTALL), noise),
    *PAM_MESSAGES,
)

_SU_MESSAGES: tuple[Message, ...] = (
    Message(
        re.compile(r"(?P<failed>FAILED SU )?\(to (?P<target>\S+)\) (?P<user>\S+) on \S+", re.DOTALL), _su
    ),
    Message(re.compile(r"(?P<failed>FAILED) su for (?P<target>\S+) by (?P<user>\S+)", re.DOTALL), _su),
    Message(re.compile(r"(?P<failed>)Successful su for (?P<target>\S+) by (?P<user>\S+)", re.DOTALL), _su),
    *PAM_MESSAGES,
)


def parse_sudo(env: Envelope, ctx: ConnectionContext) -> Result:
    """Turn one sudo message into an event or a :class:`LineStatus`."""
    return match_first(_SUDO_MESSAGES, env.message, env, False, ctx) or LineStatus.UNMATCHED


def parse_su(env: Envelope, ctx: ConnectionContext) -> Result:
    """Turn one su message into an event or a :class:`LineStatus`."""
    return match_first(_SU_MESSAGES, env.message, env, False, ctx) or LineStatus.UNMATCHED
