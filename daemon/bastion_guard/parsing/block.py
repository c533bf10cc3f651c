# ruff: noqa: PLR0917  (experiment: the handlers take the envelope fields as arguments)
"""The block fast path: parse a run of lines with one regex scan instead of one parser call per line.

Why it exists: :class:`~bastion_guard.parsing.parser.LineParser` spends its time in Python glue (split,
table lookups, dispatch on the first word, a builder, ``attribute()``, ``event()``: a dozen calls per
line), not in regex matching. Here one combined pattern runs over the whole block in C
(``finditer``) and, for the message shapes that make up nearly all of a bastion's auth.log, yields the
envelope and message fields at once; a short handler per shape builds the event. Everything else (other
envelope forms, rare messages, anything unusual about a line) goes through ``LineParser.parse``
unchanged, in order, with the same connection context, so the results are those of ``LineParser.parse``
line for line. ``tests/unit/test_block_parser.py`` checks that on generated logs, the test corpus and
hypothesis-made hostile lines.

How the shapes stay equivalent to the catalogue (:mod:`.sshd`, :mod:`.pam`):

- The envelope is the one :class:`~bastion_guard.parsing.envelope.FastTables` accepts: a microsecond
  RFC 3339 stamp of a second whose minute the envelope regex has already read, with the same offset text,
  and a host the regex has already seen; otherwise the line falls back.
- Each shape is a catalogue pattern with ``.`` written ``[^\\n]`` (a line never holds a newline), attacker
  user fields bounded to ``MAX_PLAIN_USER_LENGTH`` (longer ones are attributed only through the
  connection context, so they fall back), and a fixed ``ssh2``/``port N`` end where the catalogue's is
  optional. A shape matches only lines the catalogue entry matches, with the same groups: the user field
  is still greedy and ``[^:]``, and what follows it (`` from ADDR port N ssh2``) can be found only at one
  place in a line, so a decoy address inside the name is never the one read.
- The catalogue cuts `` [preauth]`` before matching; each shape ends in ``SUFFIX``, which takes the
  suffix if the line has one and otherwise refuses a line ending in it, so the shape's body is matched
  against exactly the text the catalogue matches.
- A shape is tried only where the catalogue would reach the same entry first (earlier candidates of the
  same first word cannot match it; see the comments at each shape).
- A handler that finds something it does not handle (an address that is a DNS name) returns ``None``
  before touching any state, and the line falls back.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from bastion_guard.events import Event, Kind, Outcome
from bastion_guard.parsing.addresses import canonical_ip
from bastion_guard.parsing.common import MAX_PLAIN_USER_LENGTH
from bastion_guard.parsing.context import ConnectionContext
from bastion_guard.parsing.parser import MAX_LINE_CHARS, PROGRAMS, LineParser
from bastion_guard.parsing.status import LineStatus

FAILURE, SUCCESS, INFO = Outcome.FAILURE, Outcome.SUCCESS, Outcome.INFO
NOISE = LineStatus.NOISE
_new_tuple = tuple.__new__

Result = Event | LineStatus

# A shape's handler: (match, epoch, utc_offset, host, program, pid, context, source, position, raw) ->
# the result, or None for "let LineParser decide" (it must not have changed any state then).
Handler = Callable[
    [re.Match[str], float, int, str, str, int, ConnectionContext, str, int, str], Result | None
]

# A user field sshd printed whole (see MAX_PLAIN_USER_LENGTH); {limit} is filled in by _combined().
_USER = r"[^:\n]{{0,{limit}}}?"
# " [preauth]" taken when present, and a line ending in it refused otherwise: see the module docstring.
SUFFIX = r"(?:(?P<{name}_pre> \[preauth\])|(?<! \[preauth\]))"
_PAM_FIELDS = (
    r"logname=[^\s=]* uid=\d* euid=\d* tty=[^\s=]* ruser=[^\s=]* rhost=(?P<{name}_rhost>[^\s=]+)"
    r"(?: +user=(?P<{name}_user>[^\s=]{{1,{limit}}}))? ?"
)


# --- handlers, one per shape ----------------------------------------------------------------------------


def _failed(
    m: re.Match[str], epoch: float, offset: int, host: str, program: str, pid: int, ctx: ConnectionContext,
    source: str, position: int, raw: str,
) -> Result | None:
    method, invalid, user, addr, port = m.group("failed_method", "failed_invalid", "failed_user",
                                                "failed_addr", "failed_port")
    ip = canonical_ip(addr)
    if ip is None:
        return None
    number = int(port)
    ctx.remember(host, pid, ip, number, epoch)
    return _new_tuple(Event, (
        epoch, offset, host, program, pid, Kind.AUTH_FAILURE, FAILURE, ip, number, user, method, None, None,
        None, None, None, invalid is None, "line", None, 1, source, position, raw,
    ))


def _pam_failure(
    m: re.Match[str], epoch: float, offset: int, host: str, program: str, pid: int, ctx: ConnectionContext,
    source: str, position: int, raw: str,
) -> Result | None:
    rhost, user = m.group("pam_rhost", "pam_user")
    ip = canonical_ip(rhost)
    if ip is None:
        return None
    ctx.remember(host, pid, ip, None, epoch)
    return _new_tuple(Event, (
        epoch, offset, host, program, pid, Kind.PAM_AUTH_FAILURE, FAILURE, ip, None, user, "pam", None, None,
        None, None, None, None, "line", None, 1, source, position, raw,
    ))


def _pam_more(
    m: re.Match[str], epoch: float, offset: int, host: str, program: str, pid: int, ctx: ConnectionContext,
    source: str, position: int, raw: str,
) -> Result | None:
    count, rhost, user = m.group("more_count", "more_rhost", "more_user")
    ip = canonical_ip(rhost)
    if ip is None:
        return None
    ctx.remember(host, pid, ip, None, epoch)
    return _new_tuple(Event, (
        epoch, offset, host, program, pid, Kind.PAM_MORE_FAILURES, FAILURE, ip, None, user, "pam", None,
        None, None, None, None, None, "line", f"{count} more failures", 1, source, position, raw,
    ))


def _connection(
    m: re.Match[str], epoch: float, offset: int, host: str, program: str, pid: int, ctx: ConnectionContext,
    source: str, position: int, raw: str,
) -> Result | None:
    addr, port, local = m.group("conn_addr", "conn_port", "conn_local")
    ip = canonical_ip(addr)
    if ip is None:
        return None
    number = int(port)
    ctx.remember(host, pid, ip, number, epoch)
    return _new_tuple(Event, (
        epoch, offset, host, program, pid, Kind.CONNECTION, INFO, ip, number, None, None, None, None, None,
        None, None, None, "line", local, 1, source, position, raw,
    ))


def _invalid_user(
    m: re.Match[str], epoch: float, offset: int, host: str, program: str, pid: int, ctx: ConnectionContext,
    source: str, position: int, raw: str,
) -> Result | None:
    user, addr, port = m.group("invalid_user", "invalid_addr", "invalid_port")
    ip = canonical_ip(addr)
    if ip is None:
        return None
    number = int(port)
    ctx.remember(host, pid, ip, number, epoch)
    return _new_tuple(Event, (
        epoch, offset, host, program, pid, Kind.INVALID_USER, FAILURE, ip, number, user, None, None, None,
        None, None, None, False, "line", None, 1, source, position, raw,
    ))


def _closed_by_user(
    m: re.Match[str], epoch: float, offset: int, host: str, program: str, pid: int, ctx: ConnectionContext,
    source: str, position: int, raw: str,
) -> Result | None:
    """``Connection closed|reset by invalid|authenticating user U A port P``: always before auth."""
    how, state, user, addr, port = m.group("cuser_how", "cuser_state", "cuser_user", "cuser_addr",
                                           "cuser_port")
    ip = canonical_ip(addr)
    if ip is None:
        return None
    number = int(port)
    ctx.remember(host, pid, ip, number, epoch)
    return _new_tuple(Event, (
        epoch, offset, host, program, pid, Kind.PREAUTH_CLOSE, FAILURE, ip, number, user, None, None, None,
        None, None, None, state != "invalid", "line", how, 1, source, position, raw,
    ))


def _closed(
    m: re.Match[str], epoch: float, offset: int, host: str, program: str, pid: int, ctx: ConnectionContext,
    source: str, position: int, raw: str,
) -> Result | None:
    """``Connection closed|reset by A port P`` (how) and ``Disconnected from A port P`` (how is "")."""
    how, addr, port = m.group("closed_how", "closed_addr", "closed_port")
    if how is None:
        addr, port = m.group("gone_addr", "gone_port")
        how = ""
    ip = canonical_ip(addr)
    if ip is None:
        return None
    number = int(port)
    ctx.remember(host, pid, ip, number, epoch)
    # With a port and no user both forms are a pre-auth close, with or without [preauth] (see _closed in
    # the catalogue).
    return _new_tuple(Event, (
        epoch, offset, host, program, pid, Kind.PREAUTH_CLOSE, FAILURE, ip, number, None, None, None, None,
        None, None, None, None, "line", how, 1, source, position, raw,
    ))


def _disconnected_user(
    m: re.Match[str], epoch: float, offset: int, host: str, program: str, pid: int, ctx: ConnectionContext,
    source: str, position: int, raw: str,
) -> Result | None:
    state, user, addr, port, preauth = m.group("duser_state", "duser_user", "duser_addr", "duser_port",
                                               "duser_pre")
    ip = canonical_ip(addr)
    if ip is None:
        return None
    number = int(port)
    ctx.remember(host, pid, ip, number, epoch)
    if preauth is not None or state != "user":
        kind, outcome = Kind.PREAUTH_CLOSE, FAILURE
    else:
        kind, outcome = Kind.DISCONNECT, INFO
    return _new_tuple(Event, (
        epoch, offset, host, program, pid, kind, outcome, ip, number, user, None, None, None, None, None,
        None, state != "invalid", "line", "", 1, source, position, raw,
    ))


def _received_disconnect(
    m: re.Match[str], epoch: float, offset: int, host: str, program: str, pid: int, ctx: ConnectionContext,
    source: str, position: int, raw: str,
) -> Result | None:
    addr, port, code, reason, preauth = m.group("recv_addr", "recv_port", "recv_code", "recv_reason",
                                                "recv_pre")
    ip = canonical_ip(addr)
    if ip is None:
        return None
    number = int(port) if port else None
    ctx.remember(host, pid, ip, number, epoch)
    if preauth is not None or code != "11":  # 11: SSH2_DISCONNECT_BY_APPLICATION, the ordinary bye
        kind, outcome = Kind.PREAUTH_DISCONNECT, FAILURE
    else:
        kind, outcome = Kind.DISCONNECT, INFO
    return _new_tuple(Event, (
        epoch, offset, host, program, pid, kind, outcome, ip, number, None, None, None, None, None, None,
        None, None, "line", reason, 1, source, position, raw,
    ))


def _max_auth(
    m: re.Match[str], epoch: float, offset: int, host: str, program: str, pid: int, ctx: ConnectionContext,
    source: str, position: int, raw: str,
) -> Result | None:
    invalid, user, addr, port = m.group("max_invalid", "max_user", "max_addr", "max_port")
    ip = canonical_ip(addr)
    if ip is None:
        return None
    number = int(port)
    ctx.remember(host, pid, ip, number, epoch)
    return _new_tuple(Event, (
        epoch, offset, host, program, pid, Kind.MAX_AUTH_EXCEEDED, FAILURE, ip, number, user, None, None,
        None, None, None, None, invalid is None, "line", None, 1, source, position, raw,
    ))


def _disconnecting(
    m: re.Match[str], epoch: float, offset: int, host: str, program: str, pid: int, ctx: ConnectionContext,
    source: str, position: int, raw: str,
) -> Result | None:
    state, user, addr, port, reason = m.group("dcing_state", "dcing_user", "dcing_addr", "dcing_port",
                                              "dcing_reason")
    ip = canonical_ip(addr)
    if ip is None:
        return None
    number = int(port)
    ctx.remember(host, pid, ip, number, epoch)
    kind = Kind.TOO_MANY_AUTH_FAILURES
    if not reason.startswith("Too many authentication failures"):
        kind = Kind.PREAUTH_CLOSE
    return _new_tuple(Event, (
        epoch, offset, host, program, pid, kind, FAILURE, ip, number, user, None, None, None, None, None,
        None, state != "invalid", "line", reason, 1, source, position, raw,
    ))


def _kex(
    m: re.Match[str], epoch: float, offset: int, host: str, program: str, pid: int, ctx: ConnectionContext,
    source: str, position: int, raw: str,
) -> Result | None:
    """``kex_exchange_identification: ...``: no address in the line, the connection context has it."""
    known = ctx.lookup(host, pid, epoch)
    ip, port, by = (known[0], known[1], "connection") if known is not None else (None, None, None)
    return _new_tuple(Event, (
        epoch, offset, host, program, pid, Kind.HANDSHAKE_ERROR, FAILURE, ip, port, None, None, None, None,
        None, None, None, None, by, m["kex_reason"], 1, source, position, raw,
    ))


def _banner(
    m: re.Match[str], epoch: float, offset: int, host: str, program: str, pid: int, ctx: ConnectionContext,
    source: str, position: int, raw: str,
) -> Result | None:
    addr, port, reason = m.group("banner_addr", "banner_port", "banner_reason")
    ip = canonical_ip(addr)
    if ip is None:
        return None
    number = int(port)
    ctx.remember(host, pid, ip, number, epoch)
    return _new_tuple(Event, (
        epoch, offset, host, program, pid, Kind.HANDSHAKE_ERROR, FAILURE, ip, number, None, None, None, None,
        None, None, None, None, "line", reason, 1, source, position, raw,
    ))


def _session(
    m: re.Match[str], epoch: float, offset: int, host: str, program: str, pid: int, ctx: ConnectionContext,
    source: str, position: int, raw: str,
) -> Result | None:
    what, user = m.group("session_what", "session_user")
    known = ctx.lookup(host, pid, epoch)
    ip, port, by = (known[0], known[1], "connection") if known is not None else (None, None, None)
    kind = Kind.SESSION_OPENED if what == "opened" else Kind.SESSION_CLOSED
    return _new_tuple(Event, (
        epoch, offset, host, program, pid, kind, INFO, ip, port, user, None, None, None, None, None, None,
        True, by, None, 1, source, position, raw,
    ))


def _noise(
    m: re.Match[str], epoch: float, offset: int, host: str, program: str, pid: int, ctx: ConnectionContext,
    source: str, position: int, raw: str,
) -> Result | None:
    return NOISE


# --- shapes -----------------------------------------------------------------------------------------------

# name -> (message pattern with {name} for group prefixes, handler). Names prefix every group, because one
# regex holds them all. Each comment says which catalogue entry the shape is and why no earlier candidate
# of the same first word can match its lines.
_SHAPES: dict[str, tuple[str, Handler]] = {
    # "Failed": the only candidate. The catalogue's optional port, ssh2 and ": tail" are required/absent
    # here; an address ending in ":" could be read shorter by the catalogue (a ": " tail), so it is refused.
    "failed": (
        r"Failed (?P<{name}_method>\S+) for (?P<{name}_invalid>invalid user |illegal user )?"
        r"(?P<{name}_user>" + _USER + r") from (?P<{name}_addr>\S+)(?<!:) port (?P<{name}_port>\d+) ssh2",
        _failed,
    ),
    # pam_unix auth failure: first PAM candidate. Field values without "=" make rhost= appear once (the
    # catalogue's trust condition); user names without spaces end where the catalogue's lazy one ends.
    "pam": (
        r"pam_unix\(sshd:auth\): authentication failure; " + _PAM_FIELDS,
        _pam_failure,
    ),
    # "PAM N more": the fourth PAM candidate; the first three need "auth", "session" or "PAM: ".
    "more": (
        r"PAM (?P<{name}_count>\d+) more authentication failures?; " + _PAM_FIELDS,
        _pam_more,
    ),
    # "Connection": the first candidate, as written.
    "conn": (
        r"Connection from (?P<{name}_addr>\S+) port (?P<{name}_port>\d+) on (?P<{name}_local>\S+ port \d+)"
        r"(?: rdomain \"[^\"\n]*\")?",
        _connection,
    ),
    # "Connection": third candidate (the first two say "from").
    "cuser": (
        r"Connection (?P<{name}_how>closed|reset) by (?P<{name}_state>invalid|authenticating) user "
        r"(?P<{name}_user>" + _USER + r") (?P<{name}_addr>\S+) port (?P<{name}_port>\d+)",
        _closed_by_user,
    ),
    # "Connection": fourth candidate with its port; the third needs "by invalid|authenticating user ".
    "closed": (
        r"Connection (?P<{name}_how>closed|reset) by (?P<{name}_addr>\S+?) port (?P<{name}_port>\d+)",
        _closed,
    ),
    # "Disconnected": second candidate with its port; the first needs a state word and a user field,
    # one more space-separated field than this shape allows.
    "gone": (
        r"Disconnected from (?P<{name}_addr>\S+?) port (?P<{name}_port>\d+)",
        _closed,
    ),
    # "Disconnected": first candidate.
    "duser": (
        r"Disconnected from (?P<{name}_state>invalid|authenticating|user) (?:user )?"
        r"(?P<{name}_user>" + _USER + r") (?P<{name}_addr>\S+) port (?P<{name}_port>\d+)",
        _disconnected_user,
    ),
    # "Invalid": the only candidate, with its port.
    "invalid": (
        r"Invalid user (?P<{name}_user>" + _USER + r") from (?P<{name}_addr>\S+?) port (?P<{name}_port>\d+)",
        _invalid_user,
    ),
    # "Received": first candidate, as written (including its lazy address).
    "recv": (
        r"Received disconnect from (?P<{name}_addr>\S+?)(?: port (?P<{name}_port>\d+))?: ?(?P<{name}_code>\d+)"
        r": ?(?P<{name}_reason>[^\n]*)",
        _received_disconnect,
    ),
    # "error: maximum": the only candidate, with ssh2.
    "max": (
        r"error: maximum authentication attempts exceeded for (?P<{name}_invalid>invalid user )?"
        r"(?P<{name}_user>" + _USER + r") from (?P<{name}_addr>\S+) port (?P<{name}_port>\d+) ssh2",
        _max_auth,
    ),
    # "Disconnecting": the only candidate.
    "dcing": (
        r"Disconnecting (?P<{name}_state>invalid|authenticating) user (?P<{name}_user>" + _USER + r") "
        r"(?P<{name}_addr>\S+) port (?P<{name}_port>\d+): (?P<{name}_reason>[^\n]*)",
        _disconnecting,
    ),
    # "error: kex_exchange_identification:": the only candidate.
    "kex": (r"error: kex_exchange_identification: (?P<{name}_reason>[^\n]*)", _kex),
    # "banner": the only candidate.
    "banner": (
        r"banner exchange: Connection from (?P<{name}_addr>\S+?) port (?P<{name}_port>\d+): "
        r"(?P<{name}_reason>[^\n]*)",
        _banner,
    ),
    # pam_unix session: second PAM candidate (the first needs ":auth):").
    "session": (
        r"pam_unix\(sshd:session\): session (?P<{name}_what>opened|closed) for user "
        r"(?P<{name}_user>[^\s(]+)(?:\(uid=\d+\))?(?: by [^\n]*)?",
        _session,
    ),
    # Noise: "check pass" (last PAM candidate that matches it), "Accepted key" (the first "Accepted"
    # candidate needs "Accepted key for "), "Postponed", "User child" (the other "User" candidates need
    # "not allowed"), "Starting session:".
    "noise": (
        r"(?:pam_unix\(sshd:auth\): check pass; user unknown|Accepted key (?!for )[^\n]*|Postponed [^\n]*"
        r"|User child is on pid \d+|Starting session: [^\n]*)",
        _noise,
    ),
}

_ENVELOPE = (
    r"(?P<secs>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(?P<frac>\d{6})(?P<off>\S*) (?P<host>\S+) "
)
# The program and pid field of the sshd forms, as FastTables.tag() would read it.
_SSHD_TAG = r"(?P<prog>sshd|sshd-session|sshd-auth)\[(?P<pid>\d{1,10})\]: "
# Any other program's tag (the envelope's _PROGRAM and _PID fragments): skipped without a parser call.
_OTHER_TAG = r"(?P<program>(?P<oprog>[A-Za-z0-9_.()/-]+?)\[\d{1,10}\]: [^\n]*)"


def _combined() -> re.Pattern[str]:
    shapes = "|".join(
        # The name goes in an empty group at the end: it closes last (so it is the match's lastgroup), and
        # a branch that starts with a literal lets the regex engine skip it on its first character.
        f"{pattern.format(name=name, limit=MAX_PLAIN_USER_LENGTH)}{SUFFIX.format(name=name)}(?P<{name}>)"
        for name, (pattern, _handler) in _SHAPES.items()
    )
    return re.compile(
        rf"^(?:{_ENVELOPE}(?:{_SSHD_TAG}(?:{shapes})|{_OTHER_TAG})|(?P<other>[^\n]*))$", re.MULTILINE
    )


_COMBINED = _combined()
_HANDLERS: dict[str, Handler] = {name: handler for name, (_pattern, handler) in _SHAPES.items()}


class BlockParser:
    """Parse runs of lines of one source; shares the state of (and falls back to) one :class:`LineParser`.

    ``parse_block(texts, source, positions)`` returns, for each line, exactly what
    ``LineParser.parse(text, source, position)`` would have returned had the lines been fed to it one by
    one in order; a caller may mix both on the same parser.
    """

    __slots__ = ("_line_parser",)

    def __init__(self, line_parser: LineParser) -> None:
        self._line_parser = line_parser

    def parse_block(self, texts: Sequence[str], source: str, positions: Sequence[int]) -> list[Result]:
        """Parse ``texts`` (lines without newlines); ``positions[i]`` is the position of ``texts[i]``."""
        line_parser = self._line_parser
        parse_line = line_parser.parse
        if not texts:
            return []
        block = "\n".join(texts)
        # A text holding a newline would split differently; an oversized one is the line parser's to count.
        if block.count("\n") != len(texts) - 1 or max(map(len, texts)) > MAX_LINE_CHARS:
            return [parse_line(text, source, position) for text, position in zip(texts, positions, strict=True)]
        fast = line_parser.fast_tables
        seconds_get = fast.seconds.get
        new_second = fast.second
        hosts = fast.hosts
        ctx = line_parser.context
        handlers = _HANDLERS
        programs = PROGRAMS
        other_program = LineStatus.OTHER_PROGRAM
        results: list[Result] = []
        append = results.append
        index = -1
        for m in _COMBINED.finditer(block):
            index += 1
            name = m.lastgroup
            if name == "other":
                append(parse_line(texts[index], source, positions[index]))
                continue
            secs, frac, offset_text, host, program, pid = m.group("secs", "frac", "off", "host", "prog", "pid")
            # FastTables' conditions, as LineParser's fast path checks them (see its docstring).
            second = seconds_get(secs) or new_second(f"{secs}.{frac}{offset_text}")
            if second is None or second[0] != offset_text or host not in hosts:
                append(parse_line(texts[index], source, positions[index]))
                continue
            if name == "program":
                if m["oprog"] in programs:  # a watched program in a form the shapes do not cover
                    append(parse_line(texts[index], source, positions[index]))
                else:
                    append(other_program)
                continue
            raw = texts[index]
            result = handlers[name](  # type: ignore[index]
                m, second[2] + int(frac) / 1_000_000, second[3], host, program, int(pid), ctx, source,
                positions[index], raw,
            )
            append(parse_line(raw, source, positions[index]) if result is None else result)
        if index != len(texts) - 1:  # cannot happen: every line ends in one match; never trust it blindly
            raise AssertionError(f"block scan saw {index + 1} lines of {len(texts)}")
        return results
