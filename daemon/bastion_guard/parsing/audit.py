"""Linux audit records about sshd (``/var/log/audit/audit.log`` and SELinux hosts).

``type=USER_AUTH msg=audit(1373129280.000:9): pid=1277 uid=0 ... msg='op=pubkey acct="root"
exe="/usr/sbin/sshd" hostname=? addr=194.228.20.113 terminal=ssh res=failed'``

auditd hex-encodes any untrusted value that contains a space, quote or control character (``acct=
28696E76616C6964207573657229``), so no field can smuggle ``addr=`` text; the record also carries its
own UTC time.
"""

from __future__ import annotations

import re

from bastion_guard.events import Event, Kind, Outcome
from bastion_guard.parsing.addresses import split_client
from bastion_guard.parsing.common import event
from bastion_guard.parsing.context import ConnectionContext
from bastion_guard.parsing.envelope import Envelope
from bastion_guard.parsing.status import LineStatus

_RECORD = re.compile(
    r"type=(?P<type>USER_AUTH|USER_ERR|USER_LOGIN|USER_ACCT) msg=audit\((?P<epoch>\d+(?:\.\d+)?):\d+\): "
    r".*?pid=(?P<pid>\d+) .*?msg='op=(?P<op>\S+)(?: grantors=\S+)? acct=(?P<acct>\"[^\"]*\"|[0-9A-F]+) "
    r"exe=\"(?P<exe>[^\"]*)\" hostname=(?P<hostname>\S+) addr=(?P<addr>\S+) terminal=\S+ "
    # auditd's enriched format appends interpreted fields after a group separator (0x1d): UID="root" ...
    r"res=(?P<res>success|failed)'?(?:\x1d.*)?",
    re.DOTALL,
)
# One failed login makes several records; only these two say "this attempt failed" once.
_FAILURE_KINDS = {"USER_AUTH": Kind.AUTH_FAILURE, "USER_ERR": Kind.PAM_ERROR}


def parse_audit(line: str, source: str, position: int, ctx: ConnectionContext) -> Event | LineStatus:
    """Turn one audit record into an event (sshd authentication failures) or a :class:`LineStatus`."""
    match = _RECORD.fullmatch(line)
    if match is None:
        return LineStatus.MALFORMED
    if not match["exe"].endswith(("/sshd", "/sshd-session", "/sshd-auth")):
        return LineStatus.OTHER_PROGRAM
    kind = _FAILURE_KINDS.get(match["type"])
    if kind is None or match["res"] != "failed":
        return LineStatus.NOISE
    ip, name = split_client(match["addr"] if match["addr"] != "?" else "")
    envelope = Envelope(float(match["epoch"]), 0, None, "sshd", int(match["pid"]), "", line, source, position)
    return event(
        envelope, kind, Outcome.FAILURE, (ip, None, name, "line" if ip else None),
        _account(match["acct"]), method=match["op"].removeprefix("PAM:"),
    )


def _account(field: str) -> str | None:
    if field.startswith('"'):
        value = field[1:-1]
        return None if value == "?" else value
    try:
        return bytes.fromhex(field).decode("utf-8", "backslashreplace")
    except ValueError:
        return field
