"""sshd's messages (``sshd``, ``sshd-session`` from OpenSSH 9.8, ``sshd-auth`` from OpenSSH 10).

Attribution rule: the client address is read where sshd's format puts it, anchored on the side of the
line that no attacker controls. When an attacker-chosen field (a user name) comes *before* the address,
the pattern is anchored on the fixed suffix at the end of the line and the user field is greedy, so the
address is the one in sshd's own suffix however many decoys the name carries; user names cannot contain
``:`` (sshd cuts the name at the first colon and treats the rest as an auth style), so ``[^:]*`` can
never reach into a ``: key info`` tail. When attacker text comes *after* the address (disconnect
reasons, banners, algorithm offers), the pattern is anchored at the start.

Lines are dispatched on their first word, so each line is tried against a handful of patterns only.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from bastion_guard.events import Kind, Outcome
from bastion_guard.parsing.common import (
    MAX_PLAIN_USER_LENGTH,
    Builder,
    Message,
    Result,
    attribute,
    event,
    noise,
    user_is_trustworthy,
)
from bastion_guard.parsing.context import ConnectionContext
from bastion_guard.parsing.envelope import Envelope
from bastion_guard.parsing.pam import PAM_MESSAGES
from bastion_guard.parsing.status import LineStatus

FAILURE, SUCCESS, INFO = Outcome.FAILURE, Outcome.SUCCESS, Outcome.INFO

# SSH2_DISCONNECT_BY_APPLICATION: the ordinary "bye" of a client; other codes are errors.
_NORMAL_DISCONNECT_CODE = "11"
_KEY_INFO = re.compile(
    r"(?P<type>[A-Z0-9@.-]+) (?P<fp>SHA256:[A-Za-z0-9+/=$]+|MD5:[0-9a-f:]+|[0-9a-fx]{2}(?::[0-9a-fx]{2}){15})"
    r"(?: ID (?P<id>.*) \(serial (?P<serial>\d+)\) CA (?P<ca_type>\S+) (?P<ca_fp>\S+))?(?P<rest>.*)"
)


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.DOTALL)


# --- authentication attempts --------------------------------------------------------------------------


# The hottest builders (one call per line of the most common messages) fetch their groups with one
# m.group(...) call, test user_is_trustworthy() inline (MAX_PLAIN_USER_LENGTH is its whole rule) and skip
# helpers when there is nothing to do; attribute() and event() stay the one definition of what they do.


def _failed(m: re.Match[str], env: Envelope, preauth: bool, ctx: ConnectionContext) -> Result:
    user, addr, port, tail = m.group("user", "addr", "port", "tail")
    client = attribute(env, ctx, addr, port, user is None or len(user) <= MAX_PLAIN_USER_LENGTH)
    key_type, fingerprint = _key(tail) if tail else _NO_KEY
    return event(
        env, Kind.AUTH_FAILURE, FAILURE, client, user, method=m["method"], key_type=key_type,
        fingerprint=fingerprint, user_valid=m["invalid"] is None,
    )


def _accepted(m: re.Match[str], env: Envelope, preauth: bool, ctx: ConnectionContext) -> Result:
    user = m["user"]
    client = attribute(env, ctx, m["addr"], m["port"], user_is_trustworthy(user))
    key_type = fingerprint = cert_id = None
    cert_serial = None
    tail = m["tail"]
    if tail:
        info = _KEY_INFO.fullmatch(tail)
        if info is not None:
            key_type, fingerprint, cert_id = info["type"], info["fp"], info["id"]
            cert_serial = int(info["serial"]) if info["serial"] else None
    return event(
        env, Kind.AUTH_SUCCESS, SUCCESS, client, user, method=m["method"], key_type=key_type,
        fingerprint=fingerprint, cert_id=cert_id, cert_serial=cert_serial, user_valid=True,
    )


def _invalid_user(m: re.Match[str], env: Envelope, preauth: bool, ctx: ConnectionContext) -> Result:
    user, addr, port = m.group("user", "addr", "port")
    client = attribute(env, ctx, addr, port, user is None or len(user) <= MAX_PLAIN_USER_LENGTH)
    return event(env, Kind.INVALID_USER, FAILURE, client, user, user_valid=False)


def _not_allowed(m: re.Match[str], env: Envelope, preauth: bool, ctx: ConnectionContext) -> Result:
    user = m["user"]
    client = attribute(env, ctx, m["addr"], None, user_is_trustworthy(user))
    return event(env, Kind.USER_NOT_ALLOWED, FAILURE, client, user, user_valid=True, detail=m["reason"])


def _root_refused(m: re.Match[str], env: Envelope, preauth: bool, ctx: ConnectionContext) -> Result:
    client = attribute(env, ctx, m["addr"], m["port"])
    return event(env, Kind.ROOT_LOGIN_REFUSED, FAILURE, client, "root", user_valid=True)


def _max_auth(m: re.Match[str], env: Envelope, preauth: bool, ctx: ConnectionContext) -> Result:
    user = m["user"]
    client = attribute(env, ctx, m["addr"], m["port"], user_is_trustworthy(user))
    return event(env, Kind.MAX_AUTH_EXCEEDED, FAILURE, client, user, user_valid=m["invalid"] is None)


def _too_many(m: re.Match[str], env: Envelope, preauth: bool, ctx: ConnectionContext) -> Result:
    groups = m.groupdict()
    user = groups.get("user")
    client = attribute(env, ctx, groups.get("addr"), groups.get("port"), user_is_trustworthy(user))
    kind = Kind.TOO_MANY_AUTH_FAILURES
    reason = groups.get("reason")
    if reason is not None and not reason.startswith("Too many authentication failures"):
        kind = Kind.PREAUTH_CLOSE
    valid = None if groups.get("state") is None else groups["state"] != "invalid"
    return event(env, kind, FAILURE, client, user, user_valid=valid, detail=reason)


def _key_revoked(m: re.Match[str], env: Envelope, preauth: bool, ctx: ConnectionContext) -> Result:
    client = attribute(env, ctx, None, None, trusted=False)
    return event(
        env, Kind.KEY_REVOKED, FAILURE, client, None, key_type=m["type"], fingerprint=m["fp"],
        detail=m["file"],
    )


# --- connections that end before authentication ---------------------------------------------------------


def _closed(m: re.Match[str], env: Envelope, preauth: bool, ctx: ConnectionContext) -> Result:
    state, user, addr, port, how = m.group("state", "user", "addr", "port", "how")
    state = state or None
    user = user if state else None
    client = attribute(env, ctx, addr, port, user is None or len(user) <= MAX_PLAIN_USER_LENGTH)
    valid = None if state is None else state != "invalid"
    # Without [preauth] and with a user ("Disconnected from user U A port P") the session was a real one.
    if preauth or (state is not None and state != "user"):
        return event(env, Kind.PREAUTH_CLOSE, FAILURE, client, user, user_valid=valid, detail=how)
    if state == "user" or port is None:
        return event(env, Kind.DISCONNECT, INFO, client, user, user_valid=valid, detail=how)
    # "Connection closed by A port P" with no user and no [preauth]: the listener closed a connection
    # that never reached authentication (it follows kex_exchange_identification errors).
    return event(env, Kind.PREAUTH_CLOSE, FAILURE, client, None, detail=how)


def _received_disconnect(m: re.Match[str], env: Envelope, preauth: bool, ctx: ConnectionContext) -> Result:
    addr, code, reason = m.group("addr", "code", "reason")
    client = attribute(env, ctx, addr, m.groupdict().get("port"))
    if preauth or code != _NORMAL_DISCONNECT_CODE:
        return event(env, Kind.PREAUTH_DISCONNECT, FAILURE, client, None, detail=reason)
    return event(env, Kind.DISCONNECT, INFO, client, None, detail=reason)


def _timeout(m: re.Match[str], env: Envelope, preauth: bool, ctx: ConnectionContext) -> Result:
    client = attribute(env, ctx, m["addr"], m.groupdict().get("port"))
    return event(env, Kind.PREAUTH_TIMEOUT, FAILURE, client, None)


def _handshake(m: re.Match[str], env: Envelope, preauth: bool, ctx: ConnectionContext) -> Result:
    groups = m.groupdict()
    address = groups.get("addr")
    client = attribute(env, ctx, address, groups.get("port"), trusted=address is not None)
    return event(env, Kind.HANDSHAKE_ERROR, FAILURE, client, None, detail=groups.get("reason"))


def _negotiation(m: re.Match[str], env: Envelope, preauth: bool, ctx: ConnectionContext) -> Result:
    groups = m.groupdict()
    address = groups.get("addr")
    client = attribute(env, ctx, address, groups.get("port"), trusted=address is not None)
    return event(env, Kind.NEGOTIATION_FAILURE, FAILURE, client, None, detail=groups.get("reason"))


def _context_close(m: re.Match[str], env: Envelope, preauth: bool, ctx: ConnectionContext) -> Result:
    """A pre-auth failure line without an address ("fatal: Read from socket failed ... [preauth]")."""
    if not preauth:
        return LineStatus.NOISE
    client = attribute(env, ctx, None, None, trusted=False)
    return event(env, Kind.PREAUTH_CLOSE, FAILURE, client, None, detail=m.string)


def _penalty(m: re.Match[str], env: Envelope, preauth: bool, ctx: ConnectionContext) -> Result:
    client = attribute(env, ctx, m["addr"], m["port"])
    return event(env, Kind.PENALTY_DROP, FAILURE, client, None, detail=m["reason"])


def _refused_connect(m: re.Match[str], env: Envelope, preauth: bool, ctx: ConnectionContext) -> Result:
    client = attribute(env, ctx, m["addr"], None)
    return event(env, Kind.PREAUTH_CLOSE, FAILURE, client, None, detail="refused by tcp wrappers")


# --- connection and session life cycle -----------------------------------------------------------------


def _connection(m: re.Match[str], env: Envelope, preauth: bool, ctx: ConnectionContext) -> Result:
    client = attribute(env, ctx, m["addr"], m["port"])
    local = m["local"] if "local" in m.re.groupindex else None
    return event(env, Kind.CONNECTION, INFO, client, None, detail=local)


def _remember(m: re.Match[str], env: Envelope, preauth: bool, ctx: ConnectionContext) -> Result:
    """A line that names the client before any attacker text (``SSH: Server;...;Remote: A-P;``)."""
    attribute(env, ctx, m["addr"], m["port"])
    return LineStatus.NOISE


def _reverse_mapping(m: re.Match[str], env: Envelope, preauth: bool, ctx: ConnectionContext) -> Result:
    client = attribute(env, ctx, m["addr"], None)
    return event(env, Kind.REVERSE_MAPPING, INFO, client, None, detail=m["name"])


_NO_KEY: tuple[None, None] = (None, None)


def _key(tail: str | None) -> tuple[str | None, str | None]:
    if not tail:
        return None, None
    info = _KEY_INFO.fullmatch(tail)
    if info is None:
        return None, None
    return info["type"], info["fp"]


_U = r"(?P<user>[^:]*)"
_ADDR_PORT = r"(?P<addr>\S+?)(?: port (?P<port>\d+))?"

SSHD_MESSAGES: dict[str, tuple[Message, ...]] = {
    "Failed": (
        Message(
            _compile(
                r"Failed (?P<method>\S+) for (?P<invalid>invalid user |illegal user )?" + _U
                + r" from " + _ADDR_PORT + r"(?: ssh[12])?(?:: (?P<tail>.*))?"
            ),
            _failed,
        ),
    ),
    "Accepted": (
        Message(
            _compile(
                r"Accepted (?P<method>\S+) for " + _U + r" from (?P<addr>\S+?) port (?P<port>\d+)"
                r"(?: ssh[12])?(?:: (?P<tail>.*))?"
            ),
            _accepted,
        ),
        Message(_compile(r"Accepted key .*"), noise),  # VERBOSE companion of "Accepted publickey"
    ),
    "Invalid": (Message(_compile(r"Invalid user " + _U + r" from " + _ADDR_PORT), _invalid_user),),
    "Illegal": (Message(_compile(r"Illegal user " + _U + r" from " + _ADDR_PORT), _invalid_user),),
    "User": (
        Message(
            _compile(r"User " + _U + r" from (?P<addr>\S+) not allowed because (?P<reason>[^:]*)"),
            _not_allowed,
        ),
        Message(
            _compile(r"User (?P<user>[^:]*?) not allowed because (?P<reason>[^:]*)(?P<addr>)"), _not_allowed
        ),
        Message(_compile(r"User child is on pid \d+"), noise),
    ),
    "ROOT": (Message(_compile(r"ROOT LOGIN REFUSED FROM " + _ADDR_PORT), _root_refused),),
    "maximum": (
        Message(
            _compile(
                r"maximum authentication attempts exceeded for (?P<invalid>invalid user )?" + _U
                + r" from (?P<addr>\S+) port (?P<port>\d+)(?: ssh[12])?"
            ),
            _max_auth,
        ),
    ),
    "Disconnecting": (
        Message(
            _compile(
                r"Disconnecting (?P<state>invalid|authenticating) user " + _U
                + r" (?P<addr>\S+) port (?P<port>\d+): (?P<reason>.*)"
            ),
            _too_many,
        ),
    ),
    "Disconnecting:": (
        Message(
            _compile(r"Disconnecting: (?P<reason>Too many authentication failures)(?: for (?P<user>.*))?"),
            _too_many,
        ),
        Message(_compile(r"Disconnecting: .*"), _context_close),
    ),
    "Authentication": (
        Message(
            _compile(r"Authentication key (?P<type>\S+) (?P<fp>\S+) revoked by file (?P<file>.*)"),
            _key_revoked,
        ),
        Message(_compile(r"Authentication (?:refused|tried) .*"), noise),
    ),
    "Connection": (
        Message(
            _compile(
                r"Connection from (?P<addr>\S+) port (?P<port>\d+) on (?P<local>\S+ port \d+)"
                r"(?: rdomain \"[^\"]*\")?"
            ),
            _connection,
        ),
        Message(_compile(r"Connection from " + _ADDR_PORT), _connection),
        # With a user field the port is required: "user NAME ADDR port N" has no keyword between name
        # and address, so an optional port would let a greedy name swallow the address.
        Message(
            _compile(
                r"Connection (?P<how>closed|reset) by (?P<state>invalid|authenticating) user " + _U
                + r" (?P<addr>\S+) port (?P<port>\d+)"
            ),
            _closed,
        ),
        Message(
            _compile(
                r"Connection (?P<how>closed|reset) by (?P<state>)(?P<user>)(?P<addr>\S+?)(?: port (?P<port>\d+))?"
            ),
            _closed,
        ),
    ),
    "Disconnected": (
        Message(
            _compile(
                r"Disconnected from (?P<state>invalid|authenticating|user) (?:user )?" + _U
                + r" (?P<addr>\S+) port (?P<port>\d+)(?P<how>)"
            ),
            _closed,
        ),
        Message(
            _compile(r"Disconnected from (?P<state>)(?P<user>)(?P<addr>\S+?)(?: port (?P<port>\d+))?(?P<how>)"),
            _closed,
        ),
    ),
    "Received": (
        # Two forms, the port form first: with an optional port, a lazy address stops at the first colon of
        # an IPv6 address ("2a01:4f8:1:2::3 port 22:11:" read as address 2a01:4f8, code 1). Without a port
        # (OpenSSH before 7.x) sshd writes "from %s: %u: %s", always with the spaces.
        Message(
            _compile(r"Received disconnect from (?P<addr>\S+) port (?P<port>\d+): ?(?P<code>\d+): ?(?P<reason>.*)"),
            _received_disconnect,
        ),
        Message(
            _compile(r"Received disconnect from (?P<addr>\S+?): (?P<code>\d+): (?P<reason>.*)"),
            _received_disconnect,
        ),
        Message(_compile(r"Received (?:signal|SIGHUP).*"), noise),
    ),
    "Timeout": (
        Message(
            _compile(r"Timeout before authentication for (?P<addr>\S+) port (?P<port>\d+)"), _timeout
        ),
        Message(
            _compile(
                r"Timeout before authentication for connection from (?P<addr>\S+) to \S+, pid = \d+"
            ),
            _timeout,
        ),
    ),
    "Did": (
        Message(
            _compile(r"Did not receive identification string from " + _ADDR_PORT), _handshake
        ),
    ),
    "Bad": (
        Message(
            _compile(r"Bad protocol version identification '(?P<reason>.*)' from " + _ADDR_PORT),
            _handshake,
        ),
        Message(_compile(r"Bad packet length .*"), _context_close),
    ),
    "kex_exchange_identification:": (
        Message(_compile(r"kex_exchange_identification: (?P<reason>.*)"), _handshake),
    ),
    "banner": (
        Message(
            _compile(
                r"banner exchange: Connection from (?P<addr>\S+?) port (?P<port>\d+): (?P<reason>.*)"
            ),
            _handshake,
        ),
    ),
    "ssh_dispatch_run_fatal:": (
        Message(
            _compile(
                r"ssh_dispatch_run_fatal: Connection from (?:(?:invalid|authenticating) user [^:]* )?"
                r"(?P<addr>\S+?) port (?P<port>\d+): (?P<reason>.*)"
            ),
            _handshake,
        ),
    ),
    "Unable": (
        Message(
            _compile(r"Unable to negotiate with (?P<addr>\S+?) port (?P<port>\d+): (?P<reason>.*)"),
            _negotiation,
        ),
        Message(_compile(r"Unable to negotiate (?P<reason>.*)"), _negotiation),
    ),
    "no": (Message(_compile(r"no matching (?P<reason>.*)"), _negotiation),),
    "drop": (
        Message(
            _compile(
                r"drop connection #\d+ from \[(?P<addr>[^\]]+)\]:(?P<port>\d+) on \[[^\]]*\]:\d+ "
                r"(?:penalty: )?(?P<reason>.*)"
            ),
            _penalty,
        ),
    ),
    "refused": (
        Message(_compile(r"refused connect from .* \((?P<addr>[^()\s]+)\)"), _refused_connect),
    ),
    "reverse": (
        Message(
            _compile(
                r"reverse mapping checking getaddrinfo for (?P<name>\S+) \[(?P<addr>[^\]]+)\] failed.*"
            ),
            _reverse_mapping,
        ),
    ),
    "Address": (
        Message(
            _compile(r"Address (?P<addr>\S+) maps to (?P<name>\S+), but this does not map back.*"),
            _reverse_mapping,
        ),
    ),
    "Read": (Message(_compile(r"Read from socket failed: .*"), _context_close),),
    "Write": (Message(_compile(r"Write failed: .*"), _context_close),),
    "Corrupted": (Message(_compile(r"Corrupted MAC on input\..*"), _context_close),),
    "Postponed": (Message(_compile(r"Postponed .*"), noise),),
    "Starting": (Message(_compile(r"Starting session: .*"), noise),),
    "Close": (Message(_compile(r"Close session: .*"), noise),),
    "Server": (Message(_compile(r"Server (?:listening|terminated|version).*"), noise),),
    "Exiting": (Message(_compile(r"Exiting on signal .*"), noise),),
    "input_userauth_request:": (Message(_compile(r"input_userauth_request: .*"), noise),),
    "SSH:": (
        Message(_compile(r"SSH: Server;Ltype: \w+;Remote: (?P<addr>[0-9A-Fa-f.:]+)-(?P<port>\d+);.*"), _remember),
        Message(_compile(r"SSH: Server;.*"), noise),
    ),
    "srclimit_penalise:": (Message(_compile(r"srclimit_penalise: .*"), noise),),
    "subsystem": (Message(_compile(r"subsystem request for .*"), noise),),
    "Transferred:": (Message(_compile(r"Transferred: .*"), noise),),
    "Changed": (Message(_compile(r"Changed root directory .*"), noise),),
    "Set": (Message(_compile(r"Set /proc/self/oom_score_adj .*"), noise),),
    "error:": (),
    "fatal:": (),
}

# Prefixes sshd puts before a message depending on its log level and where it is logged from.
_LEVEL_PREFIXES = ("error: ", "fatal: ", "warning: ", "debug1: ")
_LEVEL_HEADS = frozenset(prefix[:-1] for prefix in _LEVEL_PREFIXES)
_PREAUTH = " [preauth]"
_KERNEL_STAMP = re.compile(r"kernel: ?\[ *\d+\.\d+\]:? ")


def parse_sshd(env: Envelope, ctx: ConnectionContext) -> Result:
    """Turn one sshd message into an event or a :class:`LineStatus`."""
    body = env[5]  # env.message; index access skips the NamedTuple descriptor
    # The first word is computed once. It is also the head after " [preauth]" is cut: that suffix starts
    # with a space, so cutting it never moves the first space (a body that is just "X [preauth]" has
    # head "X" either way).
    space = body.find(" ")
    if space > 0 and body[:space] in _LEVEL_HEADS:  # "error: MSG" and friends: the level goes
        body = body[space + 1 :]
        space = body.find(" ")
    elif body.startswith("kernel:"):
        # journald sometimes glues a kernel ring-buffer stamp in front: "kernel:[  970.69]: Failed ..."
        stamp = _KERNEL_STAMP.match(body)
        if stamp is not None:
            body = body[stamp.end() :]
            space = body.find(" ")
    head = body if space < 0 else body[:space]
    preauth = body.endswith(_PREAUTH)
    if preauth:
        body = body[: -len(_PREAUTH)]
    candidates = _DISPATCH.get(head)
    if candidates is None:
        if not (head.startswith(("pam_", "PAM")) or head == "(pam_unix)"):
            return LineStatus.UNMATCHED
        candidates = _PAM_DISPATCH
    # match_first() inlined: builders never return None, so the first full match decides.
    for fullmatch, build in candidates:
        match = fullmatch(body)
        if match is not None:
            return build(match, env, preauth, ctx)
    return LineStatus.UNMATCHED


# The tables above as (bound fullmatch, builder) pairs: saves two attribute lookups per candidate tried.
_DISPATCH: dict[str, tuple[tuple[Callable[[str], re.Match[str] | None], Builder], ...]] = {
    head: tuple((message.regex.fullmatch, message.build) for message in messages)
    for head, messages in SSHD_MESSAGES.items()
}
_PAM_DISPATCH = tuple((message.regex.fullmatch, message.build) for message in PAM_MESSAGES)
