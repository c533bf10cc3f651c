#!/usr/bin/env python3
"""Generate a deterministic, realistic auth.log of a Debian 12 SSH bastion, for benchmarks.

The traffic is what OpenSSH 9.2 (Debian 12) writes through rsyslog at ``LogLevel VERBOSE`` with
``UsePAM yes`` and ``PasswordAuthentication yes``, on a host that is upgraded in place to OpenSSH 9.8+
for the last part of the file (``--sshd-session-share``): per-connection lines then come from
``sshd-session`` and the listener logs PerSourcePenalties. The mix:

* password brute force against invalid and existing accounts (1 to MaxAuthTries=6 attempts, PAM lines,
  four ways to end a connection, ``maximum authentication attempts exceeded``), a few hostile user names
  that carry a decoy address (``shared/docs/log-injection.md``);
* scanners that never authenticate (kex_exchange_identification, banner exchange, Unable to negotiate,
  Timeout before authentication, key scans), PerSourcePenalties and MaxStartups drops;
* benign public-key logins from 10.x with sudo, systemd-logind sessions, CRON, ``su`` and polkit.

Connections interleave; each keeps one pid for all its lines (plus the post-auth child's pid, as sshd
does). The clock only moves forward, at ``--rate`` lines per second on average, from a fixed start.
Attackers come from a seeded pool (``--distinct-attackers``) with /24 and /64 neighbours, about 10%
IPv6; a heavy-tailed share of them returns in campaigns. Same arguments, same seed: same bytes.

sshd itself never logs IPv4-mapped addresses (``canohost.c`` normalises ``::ffff:a.b.c.d``), so they
appear only where Debian's sshd does print them: libwrap's ``refused connect from`` under socket activation.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

HOST = "bastion"
START = datetime(2026, 11, 28, 20, 2, 18, tzinfo=UTC)
PUBLIC_V4 = "203.0.113.10"
PUBLIC_V6 = "2001:db8:ffff:1::10"
INTERNAL_V4 = "10.20.0.1"
MAX_AUTH_TRIES = 6
CHUNK_LINES = 65_536
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
PAM_FIELDS = "logname= uid=0 euid=0 tty=ssh ruser= "
PAM_AUTH_FAILURE = f"pam_unix(sshd:auth): authentication failure; {PAM_FIELDS}"
B64_LAST = "AEIMQUYcgkosw048"  # 32 bytes of hash: the 43rd character carries only 2 bits

Line = tuple[str, str]  # (syslog tag, message)
# An Item is a line, a pause in microseconds before the scenario's next line, or a callable that decides its
# line (or none) when it is written, for state that depends on the order lines reach the log.
Item = Line | int | Callable[[], Line | None]

_BOT_DICTIONARY = (  # the usual dictionary of SSH bots
    "admin user test ubuntu oracle postgres git guest ftpuser pi support deploy hadoop mysql www "
    "jenkins ansible ec2-user centos debian dev devops minecraft steam nagios zabbix tomcat elastic "
    "kafka solana sol validator node ts3 server test1 test2 user1 administrator sysadmin backup "
    "apache nginx odoo vagrant docker ubnt 123456 www-data alice bob esuser gitlab-runner student "
    "demo ftp mother operator adm testuser bitnami"
)
ATTACKER_NAMES = tuple(_BOT_DICTIONARY.split())
EXISTING_ACCOUNTS = frozenset({"root", "alice", "bob", "carol", "dave", "erin", "deploy", "backup", "www-data"})
HOSTILE_NAMES = (  # shared/docs/log-injection.md section 1; sshd cuts a name at ':', so none has one
    "a 10.9.8.7 port 1",
    "x from 6.6.6.6 port 22 ssh2",
    "root 1.2.3.4 port 5 [preauth]",
    "u rhost=9.9.9.9",
    "Accepted publickey for root from 6.6.6.6 port 22 ssh2",
    "x 6.6.6.6 on",
    "from 10.10.1.1",
    "alice from 10.20.1.5 port 22 ssh2",
)
KEX_OFFERS = (
    (
        "key exchange method",
        "diffie-hellman-group14-sha1,diffie-hellman-group-exchange-sha1,diffie-hellman-group1-sha1",
    ),
    ("key exchange method", "diffie-hellman-group1-sha1"),
    ("host key type", "ssh-rsa,ssh-dss"),
    ("cipher", "aes128-cbc,3des-cbc,aes256-cbc"),
    ("MAC", "hmac-sha1,hmac-sha1-96,hmac-md5"),
)
BANNERS = (
    '"GET / HTTP/1.1"',
    '"\\026\\003\\001"',
    '"MGLNDD_203.0.113.10_22"',
    '""',
    '"SSH-2.0-Go from 6.6.6.6"',
)
KEX_FAILURES = {  # kex_exchange_identification detail, then sshd's closing words before "A port P"
    "kex_closed": ("Connection closed by remote host", "Connection closed by"),
    "kex_reset": ("read: Connection reset by peer", "Connection reset by"),
}
DISCONNECT_REASONS = (
    ":11: Bye Bye [preauth]",
    ":11: Normal Shutdown, Thank you for playing [preauth]",
    ":11: Client disconnecting normally [preauth]",
    ":11: disconnected by user from 6.6.6.6 port 22 [preauth]",
)
SUDO_COMMANDS = (
    "/usr/bin/systemctl status ssh",
    "/usr/bin/journalctl -u ssh --since today",
    "/usr/sbin/nft list ruleset",
    "/usr/bin/apt update",
    "/usr/bin/tail -n 200 /var/log/auth.log",
    "/usr/sbin/sshd -t",
    "/usr/bin/systemctl reload ssh",
    "/usr/bin/ss -tnp",
    "/usr/bin/vim /etc/ssh/sshd_config",
    "/usr/local/bin/bastionctl status",
)


@dataclass(frozen=True, slots=True)
class Options:
    """Everything that shapes the output; equal options give byte-identical files."""

    lines: int = 1_000_000
    fmt: str = "rfc3339"
    seed: int = 1
    distinct_attackers: int = 4000
    rate: float = 4.0
    ipv6_share: float = 0.1
    sshd_session_share: float = 0.15
    concurrency: int = 4


DEFAULTS = Options()


@dataclass(frozen=True, slots=True)
class User:
    """A bastion account that logs in with a key from fixed internal addresses."""

    name: str
    uid: int
    addresses: tuple[str, ...]
    key_type: str
    fingerprint: str
    activity: float  # relative login frequency


@dataclass(slots=True)
class Scenario:
    """The remaining lines of one connection or job; ``items`` is reversed so ``pop()`` yields the next."""

    kind: str
    items: list[Item]


@dataclass(slots=True)
class Stats:
    """What was written, for the summary on stderr."""

    lines: int = 0
    bytes: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    attackers: set[str] = field(default_factory=set)
    first_us: int = 0
    last_us: int = 0


def fingerprint(rng: random.Random) -> str:
    """A plausible SHA256 key fingerprint body: 43 unpadded base64 characters."""
    return "".join(rng.choices(B64, k=42)) + rng.choice(B64_LAST)


class AttackerPool:
    """A seeded pool of attacking addresses: public IPv4 with /24 neighbours, IPv6 with /64 neighbours."""

    _V4_FIRST = tuple(o for o in range(1, 224) if o not in {10, 100, 127, 169, 172, 192, 198, 203})

    def __init__(self, rng: random.Random, size: int, ipv6_share: float) -> None:
        self.addresses = self._build(rng, size, ipv6_share)
        self._cum = list(itertools.accumulate(1.0 / (i + 1) ** 1.1 for i in range(len(self.addresses))))

    def pick(self, rng: random.Random) -> str:
        """Half uniform (every address shows up), half Zipf-weighted (a few heavy hitters)."""
        if rng.random() < 0.5:
            return self.addresses[rng.randrange(len(self.addresses))]
        return rng.choices(self.addresses, cum_weights=self._cum)[0]

    @classmethod
    def _build(cls, rng: random.Random, size: int, ipv6_share: float) -> list[str]:
        seen: set[str] = set()
        out: list[str] = []
        v4_nets: list[str] = []
        v6_nets: list[str] = []
        while len(out) < size:
            addr = cls._v6(rng, v6_nets) if rng.random() < ipv6_share else cls._v4(rng, v4_nets)
            if addr not in seen:
                seen.add(addr)
                out.append(addr)
        return out

    @classmethod
    def _v4(cls, rng: random.Random, nets: list[str]) -> str:
        if nets and rng.random() < 0.15:
            net = rng.choice(nets)
        else:
            net = f"{rng.choice(cls._V4_FIRST)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}"
            nets.append(net)
        return f"{net}.{rng.randint(1, 254)}"

    @staticmethod
    def _v6(rng: random.Random, nets: list[str]) -> str:
        if nets and rng.random() < 0.3:
            net = rng.choice(nets)
        else:
            net = f"2001:db8:{rng.randint(1, 0xFFFE):x}:{rng.randint(1, 0xFFFF):x}"
            nets.append(net)
        if rng.random() < 0.5:
            return f"{net}::{rng.randint(1, 0xFF):x}"
        return net + "".join(f":{rng.randint(1, 0xFFFF):x}" for _ in range(4))


def v6_prefix64(addr: str) -> str:
    """The /64 of an address made by :class:`AttackerPool` (first four groups are always explicit)."""
    return ":".join(addr.split(":")[:4]) + "::/64"


class Clock:
    """Event time in integer microseconds, with the syslog timestamp prefix cached per second."""

    def __init__(self, fmt: str, start: datetime) -> None:
        self.fmt = fmt
        self.now = int(start.timestamp()) * 1_000_000
        self._sec = -1
        self._prefix = ""

    def prefix(self) -> str:
        """``2026-11-28T20:02:18.`` (RFC 3339, microseconds follow) or ``Nov 28 20:02:18 bastion ``."""
        sec = self.now // 1_000_000
        if sec != self._sec:
            self._sec = sec
            moment = datetime.fromtimestamp(sec, tz=UTC)
            if self.fmt == "rfc3339":
                self._prefix = moment.strftime("%Y-%m-%dT%H:%M:%S.")
            else:
                self._prefix = f"{MONTHS[moment.month - 1]} {moment.day:2d} {moment:%H:%M:%S} {HOST} "
        return self._prefix


class Conn(NamedTuple):
    """One sshd connection: its syslog tag (``sshd[pid]``), client address and client port."""

    tag: str
    addr: str
    port: int

    def line(self, msg: str) -> Line:
        """A line of this connection."""
        return (self.tag, msg)

    @property
    def client(self) -> str:
        """``A port P``, as sshd writes the client."""
        return f"{self.addr} port {self.port}"

    @property
    def family(self) -> str:
        """``ipv4`` or ``ipv6``."""
        return "ipv6" if ":" in self.addr else "ipv4"


class Scenarios:
    """Builds the lines of one connection, session or job at a time, with consistent pids."""

    def __init__(self, rng: random.Random, opts: Options) -> None:
        self.rng = rng
        self.pool = AttackerPool(rng, opts.distinct_attackers, opts.ipv6_share)
        self.users = self._users()
        self._user_cum = list(itertools.accumulate(u.activity for u in self.users))
        self.next_pid = 19_480
        self.listener = "sshd[612]"
        self.logind = "systemd-logind[498]"
        self.daemon = "sshd"  # becomes "sshd-session" after the upgrade to OpenSSH 9.8+
        self.session_id = 2
        self.campaigns: list[list[str | int]] = []
        self.attackers_used: set[str] = set()
        self.penalties: dict[str, int] = {}  # penalised net -> 1 after "new", 2 after "activating"
        self.penalised: list[str] = []  # addresses with an active penalty, for listener drops

    # -- identities ------------------------------------------------------------------------------------

    def _users(self) -> list[User]:
        spec = (
            ("alice", 1000, 5.0),
            ("bob", 1001, 3.0),
            ("carol", 1002, 2.0),
            ("dave", 1003, 1.0),
            ("erin", 1004, 1.0),
            ("deploy", 1005, 4.0),
        )
        users = []
        for name, uid, activity in spec:
            addresses = tuple(f"10.20.{self.rng.randint(1, 40)}.{self.rng.randint(2, 250)}" for _ in range(2))
            key_type = self.rng.choice(("ED25519", "ED25519", "ED25519", "RSA", "ECDSA"))
            users.append(User(name, uid, addresses, key_type, fingerprint(self.rng), activity))
        return users

    def pid(self) -> int:
        """Next process id: increasing by small steps, wrapping at the kernel's pid_max."""
        self.next_pid += self.rng.randint(1, 4)
        if self.next_pid >= 4_194_304:
            self.next_pid = 300
        return self.next_pid

    def port(self) -> int:
        """A client source port: mostly Linux ephemeral, some anywhere above 1023."""
        if self.rng.random() < 0.8:
            return self.rng.randint(32768, 60999)
        return self.rng.randint(1024, 65535)

    def attacker(self) -> str:
        """An attacking address; most connections continue one of a few running campaigns."""
        rng = self.rng
        if self.campaigns and rng.random() < 0.85:
            campaign = self.campaigns[rng.randrange(len(self.campaigns))]
            campaign[1] = int(campaign[1]) - 1
            if int(campaign[1]) <= 0:
                self.campaigns.remove(campaign)
            return str(campaign[0])
        addr = self.pool.pick(rng)
        self.campaigns.append([addr, min(int(rng.paretovariate(1.1)), 400)])
        if len(self.campaigns) > 6:
            self.campaigns.pop(0)
        self.attackers_used.add(addr)
        return addr

    def hostile_conn(self) -> Conn:
        """A new connection from an attacker, with a fresh pid."""
        return Conn(f"{self.daemon}[{self.pid()}]", self.attacker(), self.port())

    @staticmethod
    def connection_from(conn: Conn, local: str) -> Line:
        """``Connection from A port P on B port 22 rdomain ""`` (LogLevel VERBOSE)."""
        return conn.line(f'Connection from {conn.client} on {local} port 22 rdomain ""')

    @staticmethod
    def local_for(addr: str) -> str:
        """The bastion address a client reached (same family as the client)."""
        return PUBLIC_V6 if ":" in addr else PUBLIC_V4

    # -- hostile ---------------------------------------------------------------------------------------

    def brute(self) -> Scenario:
        """One password-guessing connection: 1 to MaxAuthTries attempts, then one of several endings."""
        rng = self.rng
        conn = self.hostile_conn()
        user = self._guess_name()
        valid = user in EXISTING_ACCOUNTS
        items: list[Item] = [self.connection_from(conn, self.local_for(conn.addr))]
        if not valid:
            items.append(conn.line(f"Invalid user {user} from {conn.client}"))
            if rng.random() < 0.05:
                items.append(conn.line(f"Failed none for invalid user {user} from {conn.client} ssh2"))
        attempts = rng.choices((1, 2, 3, 4, 5, MAX_AUTH_TRIES), (50, 12, 15, 5, 3, 15))[0]
        rhost = f"rhost={conn.addr}  user={user}" if valid else f"rhost={conn.addr} "
        failed = f"Failed password for {'' if valid else 'invalid user '}{user} from {conn.client} ssh2"
        for _ in range(attempts):
            if not valid:
                items.append(conn.line("pam_unix(sshd:auth): check pass; user unknown"))
            items.append(conn.line(f"{PAM_AUTH_FAILURE}{rhost}"))
            items.append(rng.randint(1_700_000, 2_600_000))  # pam_unix's failure delay
            items.append(conn.line(failed))
        items.extend(self._brute_end(conn, user, valid=valid, attempts=attempts))
        if attempts > 1:
            more = attempts - 1
            plural = "s" if more > 1 else ""
            # pam_unix's cleanup runs at pam_end, where libpam logs with its bare "PAM" prefix
            items.append(conn.line(f"PAM {more} more authentication failure{plural}; {PAM_FIELDS}{rhost}"))
        if self.daemon == "sshd-session":
            items.append(lambda: self._penalise(conn))
        return Scenario("brute_force", items[::-1])

    def _guess_name(self) -> str:
        rng = self.rng
        r = rng.random()
        if r < 0.003:
            return rng.choice(HOSTILE_NAMES)
        if r < 0.33:
            return "root"
        if r < 0.90:
            return rng.choice(ATTACKER_NAMES)
        return f"{rng.choice(ATTACKER_NAMES)}{rng.randint(1, 2025)}"

    def _brute_end(self, conn: Conn, user: str, *, valid: bool, attempts: int) -> list[Item]:
        remote = f"{'authenticating' if valid else 'invalid'} user {user} {conn.client}"  # sshd's log preamble
        if attempts >= MAX_AUTH_TRIES:
            invalid = "" if valid else "invalid user "
            return [
                conn.line(f"error: maximum authentication attempts exceeded for {invalid}{user} "
                          f"from {conn.client} ssh2 [preauth]"),
                conn.line(f"Disconnecting {remote}: Too many authentication failures [preauth]"),
            ]  # fmt: skip
        r = self.rng.random()
        if r < 0.45:
            return [conn.line(f"Connection closed by {remote} [preauth]")]
        if r < 0.55:
            return [conn.line(f"Connection reset by {remote} [preauth]")]
        if r < 0.58:
            reason = ":3: com.jcraft.jsch.JSchException: Auth fail [preauth]"
            return [
                conn.line(f"error: Received disconnect from {conn.client}{reason}"),
                conn.line(f"Disconnected from {remote} [preauth]"),
            ]
        reason = DISCONNECT_REASONS[0] if self.rng.random() < 0.9 else self.rng.choice(DISCONNECT_REASONS)
        return [
            conn.line(f"Received disconnect from {conn.client}{reason}"),
            conn.line(f"Disconnected from {remote} [preauth]"),
        ]

    def _penalise(self, conn: Conn) -> Line | None:
        """The listener's PerSourcePenalties verdict after a failed authentication (LogLevel VERBOSE).

        The first penalty of a source is logged as ``new ... deferred`` (5 s is below ``min:15``), the one
        that pushes it past the minimum as ``activating``; later ones only at debug level.
        """
        net = v6_prefix64(conn.addr) if conn.family == "ipv6" else f"{conn.addr}/32"
        state = self.penalties.get(net, 0)
        if state >= 2:
            return None
        self.penalties[net] = state + 1
        reason = "penalty: failed authentication"
        if state == 0:
            line = f"srclimit_penalise: {conn.family}: new {net} deferred penalty of 5 seconds for {reason}"
        else:
            self.penalised.append(conn.addr)
            secs = self.rng.choice((20, 25, 30, 45, 60, 120))
            line = f"srclimit_penalise: {net}: activating {conn.family} penalty of {secs} seconds for {reason}"
        return (self.listener, line)

    def scanner(self) -> Scenario:
        """A connection that never tries to authenticate: probes, banner grabs, old clients, time-outs."""
        rng = self.rng
        conn = self.hostile_conn()
        kinds = ("kex_closed", "kex_reset", "banner", "negotiate", "timeout", "keyscan", "noid")
        kind = rng.choices(kinds, (30, 14, 14, 16, 6, 18, 2))[0]
        if kind == "noid":  # pre-8.0 wording, no longer written by OpenSSH 9.x; kept rare for parser coverage
            return Scenario("scanner", [conn.line(f"Did not receive identification string from {conn.client}")])
        body = self._scanner_body(conn, kind)
        return Scenario("scanner", [*body[::-1], self.connection_from(conn, self.local_for(conn.addr))])

    def _scanner_body(self, conn: Conn, kind: str) -> list[Item]:
        rng = self.rng
        if kind in KEX_FAILURES:
            detail, closing = KEX_FAILURES[kind]
            return [
                conn.line(f"error: kex_exchange_identification: {detail}"),
                conn.line(f"{closing} {conn.client}"),
            ]
        if kind == "banner":
            detail = "banner line contains invalid characters"
            if rng.random() < 0.7:
                detail = f"client sent invalid protocol identifier {rng.choice(BANNERS)}"
            return [
                conn.line(f"error: kex_exchange_identification: {detail}"),
                conn.line(f"banner exchange: Connection from {conn.client}: invalid format"),
            ]
        if kind == "negotiate":
            what, offer = rng.choice(KEX_OFFERS)
            no_match = f"no matching {what} found. Their offer: {offer} [preauth]"
            return [conn.line(f"Unable to negotiate with {conn.client}: {no_match}")]
        if kind == "timeout":
            return [120_000_000, conn.line(f"fatal: Timeout before authentication for {conn.client}")]
        return self._keyscan(conn)

    def _keyscan(self, conn: Conn) -> list[Item]:
        """A key scan or banner grab that completes the key exchange, then leaves."""
        if self.rng.random() < 0.7:
            return [conn.line(f"Connection closed by {conn.client} [preauth]")]
        return [
            conn.line(f"Received disconnect from {conn.client}:11: Bye Bye [preauth]"),
            conn.line(f"Disconnected from {conn.client} [preauth]"),
        ]

    def listener_drop(self) -> Scenario:
        """A connection the listener refuses before forking: PerSourcePenalties (9.8+) or MaxStartups."""
        rng = self.rng
        if self.daemon == "sshd-session":
            if not self.penalised:
                return self.brute()
            addr, port = rng.choice(self.penalised), self.port()
            reasons = (
                "penalty: failed authentication",
                "penalty: connections without attempting authentication",
                "penalty: exceeded LoginGraceTime",
            )
            reason, startups = rng.choices(reasons, (80, 15, 5))[0], rng.randint(0, 3)
        else:
            addr, port = self.attacker(), self.port()
            reason, startups = "past MaxStartups", rng.randint(10, 30)
        line = f"drop connection #{startups} from [{addr}]:{port} on [{self.local_for(addr)}]:22 {reason}"
        return Scenario("listener_drop", [(self.listener, line)])

    def wrap_refused(self) -> Scenario:
        """libwrap refusal (Debian's tcp-wrappers patch, socket-activated sshd): the mapped form survives."""
        addr = self.attacker()
        shown = addr if ":" in addr else f"::ffff:{addr}"
        return Scenario("tcp_wrappers", [(f"sshd[{self.pid()}]", f"refused connect from {shown} ({shown})")])

    # -- benign ----------------------------------------------------------------------------------------

    def login(self) -> Scenario:
        """A key login from an internal address: shell with sudo, or a ProxyJump hop with no shell."""
        rng = self.rng
        user = rng.choices(self.users, cum_weights=self._user_cum)[0]
        conn = Conn(f"{self.daemon}[{self.pid()}]", rng.choice(user.addresses), rng.randint(32768, 60999))
        items = self._login_auth(conn, user)
        self.session_id += 1
        sid = self.session_id
        items.append((self.logind, f"New session {sid} of user {user.name}."))
        child = Conn(f"{self.daemon}[{self.pid()}]", conn.addr, conn.port)
        items.append(conn.line(f"User child is on pid {child.tag[child.tag.index('[') + 1 : -1]}"))
        items.extend(self._session_body(user, child))
        items += [
            child.line(f"Received disconnect from {conn.client}:11: disconnected by user"),
            child.line(f"Disconnected from user {user.name} {conn.client}"),
            conn.line(f"pam_unix(sshd:session): session closed for user {user.name}"),
            (self.logind, f"Session {sid} logged out. Waiting for processes to exit."),
            (self.logind, f"Removed session {sid}."),
        ]
        return Scenario("benign_login", items[::-1])

    def _login_auth(self, conn: Conn, user: User) -> list[Item]:
        u, key = user.name, f"{user.key_type} SHA256:{user.fingerprint}"
        items: list[Item] = [self.connection_from(conn, INTERNAL_V4)]
        if self.rng.random() < 0.12:  # the agent offers another key first
            other = f"RSA SHA256:{fingerprint(self.rng)}"
            items.append(conn.line(f"Failed publickey for {u} from {conn.client} ssh2: {other}"))
        found = conn.line(f"Accepted key {key} found at /home/{u}/.ssh/authorized_keys:1")
        items += [
            found,
            conn.line(f"Postponed publickey for {u} from {conn.client} ssh2 [preauth]"),
            found,
            conn.line(f"Accepted publickey for {u} from {conn.client} ssh2: {key}"),
            conn.line(f"pam_unix(sshd:session): session opened for user {u}(uid={user.uid}) by (uid=0)"),
        ]
        if self.rng.random() < 0.2:  # first login since the user manager stopped
            msg = f"pam_unix(systemd-user:session): session opened for user {u}(uid={user.uid}) by (uid=0)"
            items.append((f"(systemd)[{self.pid()}]", msg))
        return items

    def _session_body(self, user: User, child: Conn) -> list[Item]:
        rng = self.rng
        if user.name == "deploy" or rng.random() < 0.3:  # ProxyJump: direct-tcpip only, no "Starting session"
            return [rng.randint(5, 1800) * 1_000_000]
        pts = rng.randint(0, 5)
        items: list[Item] = [
            child.line(f"Starting session: shell on pts/{pts} for {user.name} from {child.client} id 0")
        ]
        for _ in range(rng.choice((0, 0, 1, 1, 2, 3))):
            items.append(rng.randint(10, 600) * 1_000_000)
            items.extend(self._sudo(user, pts))
        items.append(rng.randint(10, 900) * 1_000_000)
        return items

    def _sudo(self, user: User, pts: int) -> list[Item]:
        u, rng = user.name, self.rng
        items: list[Item] = []
        if rng.random() < 0.05:  # mistyped sudo password, then the retry succeeds
            fields = f"logname={u} uid={user.uid} euid=0 tty=/dev/pts/{pts} ruser={u} rhost=  user={u}"
            items.append(("sudo", f"pam_unix(sudo:auth): authentication failure; {fields}"))
        command = rng.choice(SUDO_COMMANDS)
        items += [
            ("sudo", f"{u:>8} : TTY=pts/{pts} ; PWD=/home/{u} ; USER=root ; COMMAND={command}"),
            ("sudo", f"pam_unix(sudo:session): session opened for user root(uid=0) by {u}(uid={user.uid})"),
            rng.randint(1, 30) * 1_000_000,
            ("sudo", "pam_unix(sudo:session): session closed for user root"),
        ]
        return items

    def cron(self) -> Scenario:
        """One cron job's PAM session as root."""
        tag = f"CRON[{self.pid()}]"
        items: list[Item] = [
            (tag, "pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)"),
            self.rng.randint(200_000, 5_000_000),
            (tag, "pam_unix(cron:session): session closed for user root"),
        ]
        return Scenario("cron", items[::-1])

    def other(self) -> Scenario:
        """A small share of other programs: su, polkit, an sshd reload."""
        r = self.rng.random()
        if r < 0.6:
            items = self._su()
        elif r < 0.9:
            items = self._polkit()
        else:
            items = [
                (self.listener, "Received SIGHUP; restarting."),
                (self.listener, "Server listening on 0.0.0.0 port 22."),
                (self.listener, "Server listening on :: port 22."),
            ]
        return Scenario("other", items[::-1])

    def _su(self) -> list[Item]:
        user = self.rng.choice(self.users[:3])
        tag, by = f"su[{self.pid()}]", f"{user.name}(uid={user.uid})"
        return [
            (tag, f"(to deploy) {user.name} on pts/{self.rng.randint(0, 5)}"),
            (tag, f"pam_unix(su-l:session): session opened for user deploy(uid=1005) by {by}"),
            self.rng.randint(5, 300) * 1_000_000,
            (tag, "pam_unix(su-l:session): session closed for user deploy"),
        ]

    def _polkit(self) -> list[Item]:
        rng, tag = self.rng, "polkitd[601]"
        subject = f"unix-process:{self.pid()}:{rng.randint(10**6, 10**7)}"
        bus = f":1.{rng.randint(40, 900)}"
        path = "object path /org/freedesktop/PolicyKit1/AuthenticationAgent, locale C.UTF-8"
        agent = "[/usr/bin/pkttyagent --notify-fd 5 --fallback]"
        return [
            (tag, f"Registered Authentication Agent for {subject} (system bus name {bus} {agent}, {path})"),
            rng.randint(1, 10) * 1_000_000,
            (tag, f"Unregistered Authentication Agent for {subject} (system bus name {bus}, {path}) "
                  "(disconnected from bus)"),
        ]  # fmt: skip

    def upgrade(self) -> Scenario:
        """Restart into OpenSSH 9.8+: a new listener pid, and ``sshd-session`` for new connections."""
        old = self.listener
        self.listener = f"sshd[{self.pid()}]"
        self.daemon = "sshd-session"
        items: list[Item] = [
            (old, "Received signal 15; terminating."),
            (self.listener, "Server listening on 0.0.0.0 port 22."),
            (self.listener, "Server listening on :: port 22."),
        ]
        return Scenario("other", items[::-1])

    def next_scenario(self) -> Scenario:
        """A new connection or job, drawn by weight (chosen so brute force is roughly 70% of lines)."""
        r = self.rng.random()
        if r < 0.555:
            return self.brute()
        if r < 0.905:
            return self.scanner()
        if r < 0.935:  # listener drops: MaxStartups rarely before the upgrade, penalties after it
            return self.listener_drop() if self.daemon == "sshd-session" or r < 0.908 else self.brute()
        if r < 0.938:
            return self.wrap_refused()
        if r < 0.99:
            return self.login()
        return self.other()


class Generator:
    """Interleaves scenarios on one clock and writes the lines in large chunks."""

    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.rng = random.Random(opts.seed)
        self.scenarios = Scenarios(self.rng, opts)
        self.clock = Clock(opts.fmt, START)
        self.next_cron = (self.clock.now // 60_000_000 + 1) * 60_000_000  # cron runs on whole minutes
        self.active: list[Scenario] = []  # scenarios with a line ready now
        self.sleeping: list[tuple[int, int, Scenario]] = []  # (wake-up time, tie-breaker, scenario)
        self._seq = itertools.count()

    def _cron_due(self) -> list[Scenario]:
        due: list[Scenario] = []
        while self.clock.now >= self.next_cron:
            minute = (self.next_cron // 60_000_000) % 60
            if minute % 5 == 0:
                due.append(self.scenarios.cron())
            if minute in (17, 40):
                due.append(self.scenarios.cron())
            self.next_cron += 60_000_000
        return due

    def _refill(self) -> None:
        """Wake sleepers whose pause is over, start due cron jobs, and top up the ready connections."""
        active, sleeping, now = self.active, self.sleeping, self.clock.now
        while sleeping and sleeping[0][0] <= now:
            active.append(heapq.heappop(sleeping)[2])
        if now >= self.next_cron:
            active.extend(self._cron_due())
        while len(active) < self.opts.concurrency:
            active.append(self.scenarios.next_scenario())

    def _pick(self) -> tuple[Scenario, Line] | None:
        """Take the next item of a random ready scenario: a line, or ``None`` after a pause or a skip."""
        active = self.active
        i = int(self.rng.random() * len(active))
        scen = active[i]
        items = scen.items
        item = items.pop()
        cls = item.__class__
        if cls is int or not items:
            active[i] = active[-1]
            active.pop()
            if cls is int:
                if items:
                    heapq.heappush(self.sleeping, (self.clock.now + item, next(self._seq), scen))  # type: ignore[operator]
                return None
        if cls is not tuple:
            line = item()  # type: ignore[operator]
            return None if line is None else (scen, line)
        return scen, item  # type: ignore[return-value]

    def run(self, write: Callable[[str], object]) -> Stats:
        """Write exactly ``opts.lines`` lines through ``write`` and return what was written."""
        opts, clock = self.opts, self.clock
        expo, rate = self.rng.expovariate, opts.rate
        stats = Stats(first_us=clock.now)
        upgrade_at = opts.lines - int(opts.lines * opts.sshd_session_share) if opts.sshd_session_share else -1
        rfc, suffix = opts.fmt == "rfc3339", f"+00:00 {HOST} "
        buf: list[str] = []
        emitted = 0
        while emitted < opts.lines:
            if emitted == upgrade_at:
                upgrade_at = -1
                self.active.append(self.scenarios.upgrade())
            self._refill()
            picked = self._pick()
            if picked is None:
                continue
            scen, (tag, msg) = picked
            if rfc:
                buf.append(f"{clock.prefix()}{clock.now % 1_000_000:06d}{suffix}{tag}: {msg}\n")
            else:
                buf.append(f"{clock.prefix()}{tag}: {msg}\n")
            stats.by_kind[scen.kind] += 1
            emitted += 1
            clock.now += int(expo(rate) * 1_000_000) + 1
            if len(buf) >= CHUNK_LINES:
                stats.bytes += self._flush(buf, write)
        stats.bytes += self._flush(buf, write)
        stats.lines, stats.last_us, stats.attackers = emitted, clock.now, self.scenarios.attackers_used
        return stats

    @staticmethod
    def _flush(buf: list[str], write: Callable[[str], object]) -> int:
        chunk = "".join(buf)
        buf.clear()
        write(chunk)
        return len(chunk) if chunk.isascii() else len(chunk.encode("utf-8"))


def generate(out: Path, opts: Options) -> Stats:
    """Write the log to ``out`` (``-`` for stdout)."""
    gen = Generator(opts)
    if str(out) == "-":
        return gen.run(sys.stdout.write)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="\n") as fh:
        return gen.run(fh.write)


def _parse_args(argv: list[str] | None) -> tuple[Path, Options]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    p.add_argument("--lines", type=int, default=DEFAULTS.lines, help="lines to write (default 1,000,000)")
    p.add_argument(
        "--format",
        dest="fmt",
        choices=("rfc3339", "traditional"),
        default=DEFAULTS.fmt,
        help="rsyslog RSYSLOG_FileFormat (Debian 12 default) or RSYSLOG_TraditionalFileFormat",
    )
    p.add_argument("--seed", type=int, default=DEFAULTS.seed)
    p.add_argument("--out", type=Path, required=True, help="output file, or - for stdout")
    p.add_argument(
        "--distinct-attackers",
        type=int,
        default=DEFAULTS.distinct_attackers,
        help="size of the attacking address pool (default 4000)",
    )
    p.add_argument("--rate", type=float, default=DEFAULTS.rate, help="mean lines per second of log time")
    p.add_argument("--ipv6-share", type=float, default=DEFAULTS.ipv6_share, help="share of IPv6 attackers")
    p.add_argument(
        "--sshd-session-share",
        type=float,
        default=DEFAULTS.sshd_session_share,
        help="share of the file after the upgrade to OpenSSH 9.8+ (sshd-session, penalties)",
    )
    a = p.parse_args(argv)
    if a.lines < 0 or a.distinct_attackers < 1 or a.rate <= 0:
        p.error("--lines must be >= 0, --distinct-attackers >= 1 and --rate > 0")
    opts = Options(
        lines=a.lines,
        fmt=a.fmt,
        seed=a.seed,
        distinct_attackers=a.distinct_attackers,
        rate=a.rate,
        ipv6_share=a.ipv6_share,
        sshd_session_share=a.sshd_session_share,
    )
    return a.out, opts


def _summary(stats: Stats, seconds: float) -> str:
    span_h = (stats.last_us - stats.first_us) / 3.6e9
    kinds = ", ".join(f"{k} {v / max(stats.lines, 1):.1%}" for k, v in stats.by_kind.most_common())
    return (
        f"gen_authlog: {stats.lines:,} lines, {stats.bytes / 1e6:.1f} MB in {seconds:.2f} s "
        f"({stats.lines / max(seconds, 1e-9):,.0f} lines/s); "
        f"{len(stats.attackers):,} attacker addresses used; "
        f"log time {span_h:.1f} h\n  shares: {kinds}"
    )


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    out, opts = _parse_args(argv)
    t0 = time.perf_counter()
    stats = generate(out, opts)
    print(_summary(stats, time.perf_counter() - t0), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
