"""PAM messages as sshd, sudo and su write them (pam_unix and the ``error: PAM:`` lines of sshd).

A PAM failure line repeats the verdict that sshd logs as ``Failed password`` for the same attempt, so
these events have kinds of their own that the default rules do not count (see ``rules/sshd.yaml``).
In ``pam_unix`` lines ``rhost=`` comes before the only attacker-chosen field (``user=``, last), so the
address is read from the start; a line that shows ``rhost=`` twice is ambiguous and is attributed only
through the connection context.
"""

from __future__ import annotations

import re

from bastion_guard.events import Kind, Outcome
from bastion_guard.parsing.common import (
    Client,
    Message,
    Result,
    attribute,
    event,
    noise,
    user_is_trustworthy,
)
from bastion_guard.parsing.context import ConnectionContext
from bastion_guard.parsing.envelope import Envelope
from bastion_guard.parsing.status import LineStatus

_FIELDS = re.compile(
    r"logname=\S* uid=\d* euid=\d* tty=\S* ruser=\S* rhost=(?P<rhost>\S*)(?:\s+user=(?P<user>.*?))?\s*",
    re.DOTALL,
)
_FAILURE_KIND_BY_SERVICE = {"sshd": Kind.PAM_AUTH_FAILURE, "sudo": Kind.SUDO_FAILURE, "su": Kind.SU_FAILURE,
                            "su-l": Kind.SU_FAILURE}
_SESSION_KIND = {"opened": Kind.SESSION_OPENED, "closed": Kind.SESSION_CLOSED}


def _pam_fields(fields: str, env: Envelope, ctx: ConnectionContext) -> tuple[str | None, Client]:
    """The ``user=`` and the client of a pam_unix field list."""
    match = _FIELDS.fullmatch(fields)
    if match is None:
        return None, attribute(env, ctx, None, None, trusted=False)
    rhost, user = match.group("rhost", "user")  # one call for both groups: this runs for most PAM lines
    trusted = fields.count("rhost=") == 1 and user_is_trustworthy(user)
    rhost = rhost or None
    return user, attribute(env, ctx, rhost, None, trusted and rhost is not None)


def _auth_failure(m: re.Match[str], env: Envelope, preauth: bool, ctx: ConnectionContext) -> Result:
    kind = _FAILURE_KIND_BY_SERVICE.get(m["service"] or "sshd", Kind.PAM_AUTH_FAILURE)
    user, client = _pam_fields(m["fields"], env, ctx)
    return event(env, kind, Outcome.FAILURE, client, user, method="pam")


def _more_failures(m: re.Match[str], env: Envelope, preauth: bool, ctx: ConnectionContext) -> Result:
    user, client = _pam_fields(m["fields"], env, ctx)
    return event(
        env, Kind.PAM_MORE_FAILURES, Outcome.FAILURE, client, user, method="pam",
        detail=f"{m['count']} more failures",
    )


def _pam_error(m: re.Match[str], env: Envelope, preauth: bool, ctx: ConnectionContext) -> Result:
    user = m["user"]
    client = attribute(env, ctx, m["addr"], None, user_is_trustworthy(user))
    return event(
        env, Kind.PAM_ERROR, Outcome.FAILURE, client, user, method="pam",
        user_valid=m["invalid"] is None, detail=m["reason"],
    )


def _session(m: re.Match[str], env: Envelope, preauth: bool, ctx: ConnectionContext) -> Result:
    if (m["service"] or "sshd") != "sshd":
        return LineStatus.NOISE  # sudo/su/cron sessions: the command lines say more
    client = attribute(env, ctx, None, None, trusted=False)
    return event(env, _SESSION_KIND[m["what"]], Outcome.INFO, client, m["user"], user_valid=True)


PAM_MESSAGES: tuple[Message, ...] = (
    Message(
        re.compile(
            r"(?:pam_unix\((?P<service>[\w-]+):auth\):|\(pam_unix\)) authentication failure; (?P<fields>.*)",
            re.DOTALL,
        ),
        _auth_failure,
    ),
    Message(
        re.compile(
            r"(?:pam_unix\((?P<service>[\w-]+):session\):|\(pam_unix\)) session (?P<what>opened|closed) for user "
            r"(?P<user>[^\s(]+)(?:\(uid=\d+\))?(?: by .*)?",
            re.DOTALL,
        ),
        _session,
    ),
    Message(
        re.compile(
            r"PAM: (?P<reason>[A-Za-z ]+?) for (?P<invalid>illegal user |invalid user )?(?P<user>.*)"
            r" from (?P<addr>\S+?)(?: via \S+)? ?",
            re.DOTALL,
        ),
        _pam_error,
    ),
    Message(
        re.compile(r"PAM (?P<count>\d+) more authentication failures?; (?P<fields>.*)", re.DOTALL),
        _more_failures,
    ),
    Message(re.compile(r"PAM service\(\S+\) ignoring max retries; .*", re.DOTALL), noise),
    Message(re.compile(r"(?:pam_\w+\(|\(pam_unix\) )?check pass; user unknown", re.DOTALL), noise),
    Message(re.compile(r"pam_\w+\(.*", re.DOTALL), noise),
)
