"""Dropbear, the small SSH server some bastions and appliances run instead of OpenSSH.

Dropbear writes ``'user' from ADDR:PORT`` with the address last, so patterns are anchored at the end;
the quoted user is attacker-chosen and may itself contain ``' from 1.2.3.4:5``.
"""

from __future__ import annotations

import re

from bastion_guard.events import Kind, Outcome
from bastion_guard.parsing.common import (
    Builder,
    Message,
    Result,
    attribute,
    event,
    match_first,
    user_is_trustworthy,
)
from bastion_guard.parsing.context import ConnectionContext
from bastion_guard.parsing.envelope import Envelope
from bastion_guard.parsing.status import LineStatus

# Some builds repeat their own pid and stamp inside the message: "[825] Jul 10 23:53:52 Bad password ..."
_INNER_STAMP = re.compile(r"\[\d+\] [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d ")
_ADDR = r"(?P<addr>\S+):(?P<port>\d+)"
_KINDS = {
    "bad_password": (Kind.AUTH_FAILURE, Outcome.FAILURE),
    "nonexistent": (Kind.INVALID_USER, Outcome.FAILURE),
    "max_tries": (Kind.MAX_AUTH_EXCEEDED, Outcome.FAILURE),
    "success": (Kind.AUTH_SUCCESS, Outcome.SUCCESS),
    "connection": (Kind.CONNECTION, Outcome.INFO),
}


def _builder(name: str, method: str | None = None) -> Builder:
    kind, outcome = _KINDS[name]

    def build(m: re.Match[str], env: Envelope, preauth: bool, ctx: ConnectionContext) -> Result:
        groups = m.groupdict()
        user = groups.get("user")
        client = attribute(env, ctx, groups.get("addr"), groups.get("port"), user_is_trustworthy(user))
        return event(env, kind, outcome, client, user, method=method)

    return build


_MESSAGES: tuple[Message, ...] = (
    Message(
        re.compile(r"[Bb]ad password attempt for '(?P<user>.*)' from " + _ADDR, re.DOTALL),
        _builder("bad_password", "password"),
    ),
    Message(
        re.compile(r"[Ll]ogin attempt for nonexistent user(?: '(?P<user>.*)')? from " + _ADDR, re.DOTALL),
        _builder("nonexistent"),
    ),
    Message(
        re.compile(r"Exit before auth from <" + _ADDR + r">: .*Max auth tries reached.*", re.DOTALL),
        _builder("max_tries"),
    ),
    Message(
        re.compile(r"Exit before auth \(user '(?P<user>.*)', \d+ fails\): Max auth tries reached - "
                   r"user '.*' from " + _ADDR, re.DOTALL),
        _builder("max_tries"),
    ),
    Message(
        re.compile(
            r"(?:Password|Pubkey) auth succeeded for '(?P<user>.*)' (?:with key .* )?from " + _ADDR, re.DOTALL
        ),
        _builder("success"),
    ),
    Message(re.compile(r"Child connection from " + _ADDR, re.DOTALL), _builder("connection")),
)


def parse_dropbear(env: Envelope, ctx: ConnectionContext) -> Result:
    """Turn one dropbear message into an event or a :class:`LineStatus`."""
    body = env.message
    if body.startswith("["):
        inner = _INNER_STAMP.match(body)
        if inner is not None:
            body = body[inner.end() :]
    result = match_first(_MESSAGES, body, env, False, ctx)
    if result is not None:
        return result
    if body.startswith(("Exit", "Early exit", "Running in background", "Not backgrounding")):
        return LineStatus.NOISE
    return LineStatus.UNMATCHED
