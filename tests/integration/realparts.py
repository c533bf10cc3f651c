"""Real parts for integration tests: a private rsyslogd, a real sshd logging into it, real ssh clients.

Nothing here touches the host's logging or sshd: rsyslogd listens on its own socket in a temp dir, and
each sshd runs in a private mount namespace whose ``/dev/log`` points at that socket and whose ``/run``
is an empty tmpfs holding only ``/run/sshd`` (so the host's ``/run/sshd`` is never created or removed,
and parallel runs cannot pull it away from each other). Every process is killed by its own pid, every
user created here is deleted, every temp dir removed. Needs root, util-linux ``unshare``/``mount``,
OpenSSH, sshpass and rsyslog (see :func:`missing_requirements`).

The recipes follow ``testing-real-parts.md`` sections 3, 4 and 10 (the ``privlog.sh`` trick), rewritten
so that tests need nothing outside this repository.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

SSHD = Path("/usr/sbin/sshd")
LOOPBACK = "127.0.0.1"
DEFAULT_TIMEOUT = 20.0  # seconds; every wait here is bounded by this unless told otherwise

# privns.sh SOCKET CMD...: must run inside a private mount namespace
# (``unshare -m --propagation private privns.sh SOCKET CMD...``). glibc's syslog() is hard-wired to
# /dev/log, so /dev becomes a small tmpfs with the few devices sshd needs and ``log`` -> SOCKET.
# /run becomes an empty tmpfs with the privilege separation dir /run/sshd. Both execs keep the pid.
PRIVNS_SH = """#!/bin/sh
set -eu
sock=$1; shift
fd=$(mktemp -d "${BG_IT_TMP:-/tmp}/fakedev.XXXXXX")
mount -t tmpfs -o mode=755,size=64k bg-it-dev "$fd"
for n in null zero full random urandom tty; do
  [ -e "/dev/$n" ] || continue
  touch "$fd/$n"; mount --bind "/dev/$n" "$fd/$n"
done
mkdir "$fd/pts" "$fd/shm"
[ -d /dev/pts ] && mount --bind /dev/pts "$fd/pts"
[ -d /dev/shm ] && mount --bind /dev/shm "$fd/shm"
ln -s pts/ptmx "$fd/ptmx"; ln -s /proc/self/fd "$fd/fd"
ln -s /proc/self/fd/0 "$fd/stdin"; ln -s /proc/self/fd/1 "$fd/stdout"; ln -s /proc/self/fd/2 "$fd/stderr"
ln -s "$sock" "$fd/log"
mount --move "$fd" /dev
rmdir "$fd" 2>/dev/null || true
mount -t tmpfs -o mode=755,size=1m bg-it-run /run
mkdir -m 755 /run/sshd
exec "$@"
"""

REQUIRED_TOOLS = (
    "rsyslogd",
    "sshpass",
    "ssh",
    "ssh-keygen",
    "unshare",
    "mount",
    "useradd",
    "userdel",
    "usermod",
)


def missing_requirements() -> str | None:
    """Why the real-sshd tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root (sshd, unshare -m, mount, useradd)"
    if not os.access(SSHD, os.X_OK):
        return f"{SSHD} missing (apt-get install openssh-server)"
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if missing:
        return f"missing tools: {', '.join(missing)} (apt-get install openssh-server sshpass rsyslog)"
    try:
        probe = subprocess.run(
            ["unshare", "-m", "--propagation", "private", "true"],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare -m failed: {exc}"
    if probe.returncode != 0:
        return f"unshare -m failed (no CAP_SYS_ADMIN?): {probe.stderr.decode(errors='replace').strip()}"
    return None


# ----------------------------------------------------------------------------------------------- waiting


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Poll ``predicate`` (every 20 ms, backing off to 100 ms) until true; raise after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.1)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (callers retry if it is taken meanwhile)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def is_listening(port: int) -> bool:
    """Whether something listens on 127.0.0.1:``port`` (from /proc/net/tcp: no connection, no log noise)."""
    wanted = f"0100007F:{port:04X}"
    with Path("/proc/net/tcp").open() as table:
        next(table)
        return any(cols[1] == wanted and cols[3] == "0A" for cols in (row.split() for row in table))


def _ppid_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ')'
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def descendants(pid: int) -> list[int]:
    """All live descendants of ``pid``, children first."""
    tree = _ppid_map()
    found: list[int] = []
    todo = [pid]
    while todo:
        kids = tree.get(todo.pop(), [])
        found.extend(kids)
        todo.extend(kids)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_process(proc: subprocess.Popen[bytes] | None, grace: float = 2.0) -> None:
    """SIGTERM ``proc`` and its descendants (by pid), wait up to ``grace`` s, then SIGKILL what is left."""
    if proc is None or proc.poll() is not None:
        return
    family = [*descendants(proc.pid), proc.pid]
    for pid in (proc.pid, *family[:-1]):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and (proc.poll() is None or any(_alive(p) for p in family[:-1])):
        time.sleep(0.02)
    for pid in family:
        if pid == proc.pid and proc.poll() is not None:
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)


# ----------------------------------------------------------------------------------------------- rsyslogd


@dataclass
class Rsyslog:
    """A private ``rsyslogd -n`` writing auth lines in both Debian formats."""

    workdir: Path
    socket: Path
    auth_log: Path  # RSYSLOG_FileFormat: RFC 3339 stamps with microseconds (Debian 12 default)
    trad_log: Path  # RSYSLOG_TraditionalFileFormat: "Nov 28 20:06:17" (Debian <= 11, most parsers)
    proc: subprocess.Popen[bytes] | None = None

    def send(self, tag: str, message: str, priority: int = 4 * 8 + 6) -> None:
        """Send one syslog datagram (default auth.info) to our socket, as glibc's syslog() would."""
        stamp = time.strftime("%b %e %H:%M:%S")
        data = f"<{priority}>{stamp} {tag}[{os.getpid()}]: {message}".encode()
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(data, str(self.socket))

    def flush(self, timeout: float = DEFAULT_TIMEOUT) -> str:
        """Return once every message already in the socket is in both files: send a marker, wait for it.

        imuxsock reads in order and our config runs one main-queue worker, so the marker is written last.
        Returns the marker text, so callers can drop the line from captures.
        """
        marker = f"bg-it-flush-{secrets.token_hex(6)}"
        self.send("bg-it-marker", marker)
        wait_until(
            lambda: all(marker.encode() in p.read_bytes() for p in (self.auth_log, self.trad_log) if p.exists()),
            f"rsyslogd to write {marker}",
            timeout,
        )
        return marker


def rsyslog_config(rs: Rsyslog) -> str:
    """The rsyslog.conf for :class:`Rsyslog` (one worker, no rate limit: ordering and completeness matter)."""
    return f"""\
global(workDirectory="{rs.workdir}/rsyslog-work")
main_queue(queue.workerThreads="1")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="{rs.socket}" RateLimit.Interval="0")
# Debian 12 default template (RSYSLOG_FileFormat, RFC 3339 high precision)
auth,authpriv.* action(type="omfile" file="{rs.auth_log}" template="RSYSLOG_FileFormat")
# classic BSD-style auth.log lines (Debian <= 11 default)
auth,authpriv.* action(type="omfile" file="{rs.trad_log}" template="RSYSLOG_TraditionalFileFormat")
*.*;auth,authpriv.none action(type="omfile" file="{rs.workdir}/syslog")
"""


@contextlib.contextmanager
def running_rsyslog(workdir: Path) -> Iterator[Rsyslog]:
    """Start a private rsyslogd in ``workdir``; stop it (by pid) on exit."""
    rs = Rsyslog(workdir, workdir / "rsyslog.sock", workdir / "auth.log", workdir / "auth.trad.log")
    (workdir / "rsyslog-work").mkdir()
    conf = workdir / "rsyslog.conf"
    conf.write_text(rsyslog_config(rs))
    rsyslogd = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
    errlog = (workdir / "rsyslogd.stderr").open("wb")
    rs.proc = subprocess.Popen(
        [rsyslogd, "-n", "-f", str(conf), "-i", str(workdir / "rsyslog.pid")],
        stdin=subprocess.DEVNULL,
        stdout=errlog,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: rs.socket.exists() or rs.proc is None or rs.proc.poll() is not None, "rsyslogd socket")
        if rs.proc.poll() is not None:
            raise RuntimeError(f"rsyslogd exited: {(workdir / 'rsyslogd.stderr').read_text(errors='replace')}")
        yield rs
    finally:
        stop_process(rs.proc)
        errlog.close()


# ----------------------------------------------------------------------------------------------- sshd


@dataclass
class Sshd:
    """One real sshd on 127.0.0.1 logging through syslog() into our rsyslogd."""

    name: str
    port: int
    config: Path
    use_pam: bool
    proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The listener's pid (``unshare`` and ``privns.sh`` exec, so Popen's pid is sshd's)."""
        assert self.proc is not None
        return self.proc.pid

    def busy(self) -> bool:
        """Whether a connection is still being served (the listener has a child)."""
        return bool(descendants(self.pid))


def sshd_config(
    *, port: int, hostkey: Path, pidfile: Path, use_pam: bool, allow_user: str, extra: Sequence[str] = ()
) -> str:
    """An sshd_config for a loopback test server: only ``allow_user`` can ever log in, root never."""
    lines = [
        *extra,  # first: sshd keeps the first value it sees for most keywords
        f"Port {port}",
        f"ListenAddress {LOOPBACK}",
        "AddressFamily inet",
        f"HostKey {hostkey}",
        f"PidFile {pidfile}",
        "LogLevel VERBOSE",
        "SyslogFacility AUTH",
        f"UsePAM {'yes' if use_pam else 'no'}",
        "KbdInteractiveAuthentication no",
        "PasswordAuthentication yes",
        "PubkeyAuthentication yes",
        "AuthorizedKeysFile .ssh/authorized_keys",
        "PermitRootLogin no",
        f"AllowUsers {allow_user}",
        "MaxStartups 200:30:400",  # many parallel unauthenticated connections, none dropped
        "LoginGraceTime 30",
        "UseDNS no",
        "PrintMotd no",
        "X11Forwarding no",
        "AllowTcpForwarding no",
        "AllowAgentForwarding no",
        "PermitTunnel no",
    ]
    return "\n".join(lines) + "\n"


def _privns(workdir: Path, rs: Rsyslog, argv: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    script = workdir / "privns.sh"
    if not script.exists():
        script.write_text(PRIVNS_SH)
        script.chmod(0o755)
    env = {**os.environ, "BG_IT_TMP": str(workdir)}
    return ["unshare", "-m", "--propagation", "private", str(script), str(rs.socket), *argv], env


def _start_listening(server: Sshd, workdir: Path, rs: Rsyslog, errlog: Path) -> Sshd | None:
    """Start ``server`` and wait until it listens; None (and nothing left running) if it exited instead."""
    argv, env = _privns(workdir, rs, [str(SSHD), "-D", "-f", str(server.config)])
    with errlog.open("wb") as err:
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    server.proc = proc
    try:
        wait_until(lambda: is_listening(server.port) or proc.poll() is not None, f"sshd {server.name} to listen")
    except BaseException:
        stop_process(proc)
        raise
    return server if proc.poll() is None else None


@contextlib.contextmanager
def running_sshd(
    workdir: Path, rs: Rsyslog, name: str, *, use_pam: bool, allow_user: str, extra: Sequence[str] = ()
) -> Iterator[Sshd]:
    """Start a real ``sshd -D`` (no ``-E``: it logs via syslog to ``rs``); stop it and its children after."""
    home = workdir / f"sshd-{name}"
    home.mkdir()
    hostkey = home / "ssh_host_ed25519_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"bg-it-{name}", "-f", str(hostkey)],
        check=True,
        capture_output=True,
    )
    config = home / "sshd_config"
    server = None
    for _try in range(5):  # a port from free_port() can be taken before sshd binds it: retry with another
        port = free_port()
        config.write_text(
            sshd_config(
                port=port,
                hostkey=hostkey,
                pidfile=home / "sshd.pid",
                use_pam=use_pam,
                allow_user=allow_user,
                extra=extra,
            )
        )
        argv, env = _privns(workdir, rs, [str(SSHD), "-t", "-f", str(config)])
        test = subprocess.run(argv, env=env, capture_output=True, check=False, timeout=30)
        if test.returncode != 0:
            raise RuntimeError(f"sshd -t rejected {config}: {test.stderr.decode(errors='replace')}")
        server = _start_listening(Sshd(name, port, config, use_pam), workdir, rs, home / "sshd.stderr")
        if server is not None:
            break
    if server is None:
        raise RuntimeError(f"sshd {name} did not start: {(home / 'sshd.stderr').read_text(errors='replace')}")
    try:
        yield server
    finally:
        stop_process(server.proc)


# ----------------------------------------------------------------------------------------------- users


@dataclass(frozen=True)
class TempUser:
    """A throw-away local account: password field ``*`` (no password matches; not "locked" for sshd)."""

    name: str
    home: Path
    key: Path  # ed25519 private key authorised for the account
    fingerprint: str  # "SHA256:..." of ``key``


def _retry_passwd_tool(argv: Sequence[str]) -> None:
    # useradd & co. exit 10 when /etc/passwd is locked by a parallel run: retry for a while
    for _ in range(50):
        done = subprocess.run(argv, capture_output=True, check=False)
        if done.returncode == 0:
            return
        if done.returncode != 10:
            raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stderr.decode(errors='replace')}")
        time.sleep(0.1)
    raise RuntimeError(f"{argv[0]}: /etc/passwd stayed locked")


@contextlib.contextmanager
def temp_user(workdir: Path, name: str | None = None) -> Iterator[TempUser]:
    """Create a user (home under ``workdir``) with an authorised ed25519 key; ``userdel -r`` it on exit."""
    name = name or f"bgit_{secrets.token_hex(4)}"
    homes = workdir / "home"
    homes.mkdir(mode=0o755, exist_ok=True)
    home = homes / name
    _retry_passwd_tool(["useradd", "-m", "-d", str(home), "-s", "/bin/sh", "-K", "MAIL_DIR=/nonexistent", name])
    try:
        _retry_passwd_tool(["usermod", "-p", "*", name])
        key = workdir / f"{name}_ed25519"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@bg-it", "-f", str(key)],
            check=True,
            capture_output=True,
        )
        listing = subprocess.run(["ssh-keygen", "-l", "-f", str(key)], check=True, capture_output=True, text=True)
        fingerprint = listing.stdout.split()[1]
        ssh_dir = home / ".ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        (ssh_dir / "authorized_keys").write_text(Path(f"{key}.pub").read_text())
        (ssh_dir / "authorized_keys").chmod(0o600)
        shutil.chown(ssh_dir, name, name)
        shutil.chown(ssh_dir / "authorized_keys", name, name)
        yield TempUser(name, home, key, fingerprint)
    finally:
        with contextlib.suppress(RuntimeError):
            _retry_passwd_tool(["userdel", "-r", name])
        if subprocess.run(["id", name], capture_output=True, check=False).returncode == 0:
            _retry_passwd_tool(["userdel", name])


# ----------------------------------------------------------------------------------------------- clients

WRONG_PASSWORD = "wrong"  # noqa: S105  (our temp user's password field is "*": no password matches)
SSH_COMMON = (
    "-o", "StrictHostKeyChecking=no",
    "-o", "UserKnownHostsFile=/dev/null",
    "-o", "GlobalKnownHostsFile=/dev/null",
    "-o", "LogLevel=ERROR",
    "-o", "ConnectTimeout=5",
)  # fmt: skip
SSH_PASSWORD = (
    "-o", "PreferredAuthentications=password",
    "-o", "PubkeyAuthentication=no",
    "-o", "NumberOfPasswordPrompts=1",
)  # fmt: skip


@dataclass(frozen=True)
class ClientResult:
    """What one client attempt did (one attempt = exactly one TCP connection to one sshd)."""

    label: str
    server: str
    returncode: int
    seconds: float
    output: str = ""


def _client_config(workdir: Path, user: str) -> Path:
    """An ssh_config holding only ``User "NAME"``.

    OpenSSH's client refuses hostile names on the command line (``-l``/``-o User=``: "remote username
    contains invalid characters" for control bytes, ``;``, a trailing backslash ...) but takes them verbatim
    from a config file, and an attacker's client does not check at all. Inside double quotes the config
    parser only unescapes ``\\\\`` and ``\\"``.
    """
    if "\n" in user or "\r" in user or "\0" in user:
        raise ValueError("an ssh_config line cannot carry CR, LF or NUL")
    quoted = user.replace("\\", "\\\\").replace('"', '\\"')
    path = Path(tempfile.mkstemp(prefix="ssh_config.", dir=workdir)[1])
    path.write_bytes(f'User "{quoted}"\n'.encode("utf-8", "surrogateescape"))
    return path


def _run_client(label: str, server: Sshd, argv: Sequence[str], timeout: float = 30.0) -> ClientResult:
    started = time.monotonic()
    try:
        done = subprocess.run(argv, capture_output=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL)
        rc, out = done.returncode, (done.stdout + done.stderr).decode(errors="replace")
    except subprocess.TimeoutExpired:
        rc, out = -1, "timeout"
    return ClientResult(label, server.name, rc, time.monotonic() - started, out)


def password_attempt(
    workdir: Path, server: Sshd, user: str, label: str, password: str = WRONG_PASSWORD
) -> ClientResult:
    """``sshpass -p PASSWORD ssh ... NAME@127.0.0.1 true``: one connection, one ``Failed password`` line."""
    config = _client_config(workdir, user)
    argv = ["sshpass", "-p", password, "ssh", "-F", str(config), *SSH_COMMON, *SSH_PASSWORD,
            "-p", str(server.port), LOOPBACK, "true"]  # fmt: skip
    return _run_client(label, server, argv)


def pubkey_login(server: Sshd, user: TempUser, label: str) -> ClientResult:
    """A successful publickey login running ``true`` (``Accepted publickey ... ED25519 SHA256:...``)."""
    argv = ["ssh", "-F", "/dev/null", *SSH_COMMON, "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
            "-o", "PreferredAuthentications=publickey", "-i", str(user.key),
            "-p", str(server.port), "-l", user.name, LOOPBACK, "true"]  # fmt: skip
    return _run_client(label, server, argv)


def weak_kex_attempt(server: Sshd, label: str) -> ClientResult:
    """A real client offering only diffie-hellman-group1-sha1 (``Unable to negotiate ...``)."""
    argv = ["ssh", "-F", "/dev/null", *SSH_COMMON, "-o", "BatchMode=yes",
            "-o", "KexAlgorithms=diffie-hellman-group1-sha1",
            "-p", str(server.port), "-l", "nobody", LOOPBACK, "true"]  # fmt: skip
    return _run_client(label, server, argv)


def ssh_packet(payload: bytes) -> bytes:
    """An unencrypted SSH binary packet (RFC 4253 section 6) around ``payload``."""
    padding = 8 - (5 + len(payload)) % 8
    if padding < 4:
        padding += 8
    return struct.pack(">IB", 1 + len(payload) + padding, padding) + payload + secrets.token_bytes(padding)


def _ssh_string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def kexinit(kex_algorithms: bytes) -> bytes:
    """A client KEXINIT payload whose key exchange list is ``kex_algorithms`` (everything else acceptable)."""
    lists = [
        kex_algorithms,
        b"ssh-ed25519",
        b"aes128-ctr", b"aes128-ctr",
        b"hmac-sha2-256", b"hmac-sha2-256",
        b"none", b"none",
        b"", b"",
    ]  # fmt: skip
    return bytes([20]) + secrets.token_bytes(16) + b"".join(map(_ssh_string, lists)) + b"\0" + b"\0\0\0\0"


def disconnect(reason: bytes, code: int = 11) -> bytes:
    """An SSH_MSG_DISCONNECT payload carrying ``reason`` (sshd logs it as ``Received disconnect ...``)."""
    return bytes([1]) + struct.pack(">I", code) + _ssh_string(reason) + _ssh_string(b"")


def raw_session(server: Sshd, label: str, chunks: Sequence[bytes], timeout: float = 10.0) -> ClientResult:
    """Connect, send ``chunks`` (maybe none), then read until sshd closes (or close at once if none)."""
    started = time.monotonic()
    received = b""
    with socket.create_connection((LOOPBACK, server.port), timeout=timeout) as conn:
        for chunk in chunks:
            conn.sendall(chunk)
        if chunks:
            conn.shutdown(socket.SHUT_WR)
            with contextlib.suppress(OSError):
                while data := conn.recv(65536):
                    received += data
    banner = received.split(b"\r\n", 1)[0].decode(errors="replace")
    return ClientResult(label, server.name, 0, time.monotonic() - started, banner)


# ----------------------------------------------------------------------------------------------- log lines

_RFC3339 = re.compile(
    r"^(?P<stamp>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)) (?P<host>\S+) "
    r"(?P<program>[^\s\[:]+)(?:\[(?P<pid>\d+)\])?: ?(?P<msg>.*)$"
)
_TRADITIONAL = re.compile(
    r"^(?P<stamp>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (?P<host>\S+) "
    r"(?P<program>[^\s\[:]+)(?:\[(?P<pid>\d+)\])?: ?(?P<msg>.*)$"
)


@dataclass(frozen=True)
class LogLine:
    """One line of a captured auth log, split into its syslog header and sshd's message."""

    number: int  # 1-based, as in ``bastionctl parse`` output
    text: str
    host: str
    program: str
    pid: int | None
    msg: str


def read_log(path: Path) -> list[LogLine]:
    """Split every line of ``path`` (either format); lines without a syslog header get program ``""``."""
    lines = []
    raw = path.read_bytes().decode("utf-8", "surrogateescape").split("\n")
    if raw and raw[-1] == "":
        raw.pop()
    for number, text in enumerate(raw, 1):
        match = _RFC3339.match(text) or _TRADITIONAL.match(text)
        if match is None:
            lines.append(LogLine(number, text, "", "", None, text))
            continue
        pid = int(match["pid"]) if match["pid"] else None
        lines.append(LogLine(number, text, match["host"], match["program"], pid, match["msg"]))
    return lines


@dataclass
class Capture:
    """The result of a scenario: snapshots of both log files and what every client saw."""

    workdir: Path
    rfc3339_log: Path
    traditional_log: Path
    servers: dict[str, Sshd]
    user: TempUser
    plan: list[Planned]
    results: list[ClientResult]
    expected_connections: dict[str, int]  # per server name: one per planned client action
    seconds: float  # wall time from start to snapshot


# ----------------------------------------------------------------------------------------------- sshd quirks
#
# Measured on OpenSSH 9.2p1 (Debian 1:9.2p1-2+deb12u10) through rsyslog 8.2302.0, LogLevel VERBOSE:
# - every syslog message is cut at exactly SYSLOG_MSG_LIMIT = 500 characters (log.c: syslog("%.500s")),
#   after escaping; `sshd -E FILE` has no such cut. The cut drops the real "ADDR port N [preauth]" suffix.
# - "Invalid user %.100s", "Failed password for [invalid user ]%.100s" (logged by the monitor, escaped
#   once) keep at most 100 bytes of the name: never cut (<= 464 characters).
# - "error: maximum authentication attempts exceeded for invalid user %.100s from ADDR port N ssh2
#   [preauth]" is escaped twice and does reach 500 with 100 control bytes (seen: cut inside the name, or
#   cut after "... port N ssh2 [pr"); the 100-byte cap leaves too little room to end it with a whole decoy.
# - preauth lines naming the user ("Connection closed by invalid user NAME ADDR port N [preauth]",
#   "Disconnecting invalid user NAME ADDR port N: Too many authentication failures [preauth]") format
#   "%.200s" of "invalid user NAME" (so at most 187 bytes of name) and are escaped TWICE (child, then
#   monitor): a backslash becomes 4 characters, a control or non-ASCII byte 5 ("\\001"). 110 backslashes
#   plus " 6.6.6.6 port 22 [preauth]" end exactly at character 500: the line then ends with the decoy.
# - sshd drops a user name's text from the first ':' on; the OpenSSH client refuses control bytes, `;`,
#   a trailing backslash ... in -l (hence _client_config); CR/LF/NUL cannot be sent by a stock client.

SYSLOG_MSG_LIMIT = 500


def sshd_vis(data: bytes) -> bytes:
    """sshd's syslog escaping (strnvis VIS_CSTYLE|VIS_NL|VIS_TAB|VIS_OCTAL) for the bytes our names use."""
    out = bytearray()
    for byte in data:
        if byte == 0x5C:
            out += b"\\\\"
        elif byte in {9, 10, 13}:
            out += {9: b"\\t", 10: b"\\n", 13: b"\\r"}[byte]
        elif 0x20 <= byte < 0x7F:
            out.append(byte)
        else:
            out += b"\\%03o" % byte
    return bytes(out)


def logged_name(name: str, *, limit: int = 100, preauth: bool = False) -> str:
    """How sshd writes user ``name`` into a line: cut at ':' and at ``limit`` bytes, escaped once or twice."""
    raw = name.encode("utf-8", "surrogateescape").split(b":", 1)[0][:limit]
    escaped = sshd_vis(raw)
    if preauth:
        escaped = sshd_vis(escaped)
    return escaped.decode("ascii")


def fitted_name(prefix: str, unit: str, decoy: str, overshoot: int = 0) -> str:
    """A name whose doubly escaped preauth line is cut right after ``decoy`` (or ``overshoot`` chars into it).

    ``prefix`` is what sshd writes before the name (e.g. "Connection closed by invalid user ").
    """
    room = SYSLOG_MSG_LIMIT - len(prefix) - len(decoy) + overshoot
    unit_len = len(logged_name(unit, limit=10_000, preauth=True))
    name = unit * (room // unit_len) + "a" * (room % unit_len) + decoy
    assert len(logged_name(name, limit=10_000, preauth=True)) == room + len(decoy)
    assert len(("invalid user " + name).encode()) <= 200, "sshd would cut the name before escaping it"
    return name


@dataclass(frozen=True)
class Hostile:
    """A hostile user name: a label for reports and the name itself."""

    label: str
    name: str


# From log-injection.md sections 1-3, plus variants that hit weak address parsers (inet_aton forms,
# Unicode digits for un-ASCII'd \d, a forged "Connection from" for connection-context parsers).
HOSTILE_NAMES: tuple[Hostile, ...] = (
    Hostile("from-addr", "from 10.10.1.1"),
    Hostile("addr-port", "a 10.9.8.7 port 1"),
    Hostile("from-addr-port-ssh2", "x from 6.6.6.6 port 22 ssh2"),
    Hostile("addr-port-preauth", "root 1.2.3.4 port 5 [preauth]"),
    Hostile("rhost", "u rhost=9.9.9.9"),
    Hostile("accepted", "Accepted publickey for root from 6.6.6.6 port 22 ssh2"),
    Hostile("addr-on", "x 6.6.6.6 on"),
    Hostile("connection-from", 'Connection from 6.6.6.6 port 22 on 127.0.0.1 port 22 rdomain ""'),
    Hostile("invalid-user", "invalid user x from 6.6.6.6 port 22 ssh2"),
    Hostile("not-allowed", "x from 6.6.6.6 not allowed because listed in DenyUsers"),
    Hostile("many-addrs", "6.6.6.6 7.7.7.7 port 1 from 8.8.8.8 port 2"),
    Hostile("bare-addr", "x 6.6.6.6"),
    Hostile("trailing-space", "x 6.6.6.6 port 22 "),
    Hostile("big-port", "x from 6.6.6.6 port 99999 ssh2"),
    Hostile("ipv6-from", "x from 2001:db8::6 port 22"),
    Hostile("ipv6-mapped", "x ::ffff:6.6.6.6 port 22 ssh2"),
    Hostile("ipv6-bracket", "[2001:db8::6]:22"),
    Hostile("inet-aton-int", "x from 101058054 port 22"),
    Hostile("inet-aton-hex", "x from 0x6.6.6.6 port 22"),
    Hostile("leading-zeros", "x from 006.006.006.006 port 22"),
    Hostile("unicode-digits", "x from \uff16.\uff16.\uff16.\uff16 port 22"),
    Hostile("tabs", "x\t6.6.6.6\tport\t22"),
    Hostile("control-sep", "x\x016.6.6.6\x01port 22"),
    Hostile("quote", 'x" from 6.6.6.6 port 22 ssh2'),
    Hostile("format", "x %s %d %n from 6.6.6.6 port 22"),
    Hostile("shell", "x;$(id) `id` | from 6.6.6.6 port 22"),
    Hostile("dash", "-oProxyCommand=x 6.6.6.6 port 22"),
    Hostile("backslash-escape", "x\\040from\\0406.6.6.6 port 22"),
)

_CLOSED = "Connection closed by invalid user "
_DISCONNECTING = "Disconnecting invalid user "
_PREAUTH_DECOY = " 6.6.6.6 port 22 [preauth]"

# Long names whose real address is cut off the preauth line, leaving a decoy (or part of one) at its end.
CUT_NAMES: tuple[Hostile, ...] = (
    Hostile("cut-backslash", fitted_name(_CLOSED, "\\", _PREAUTH_DECOY)),
    Hostile("cut-control", fitted_name(_CLOSED, "\x01", _PREAUTH_DECOY)),
    Hostile("cut-utf8", fitted_name(_CLOSED, "\u00e9", _PREAUTH_DECOY)),
    Hostile("cut-mixed", fitted_name(_CLOSED, "\x7f\\\u00e9x", _PREAUTH_DECOY)),
    Hostile("cut-ssh2", fitted_name(_CLOSED, "\\", " from 6.6.6.6 port 22 ssh2")),
    Hostile("cut-port", fitted_name(_CLOSED, "\x01", " 6.6.6.6 port 22")),
    Hostile("cut-on", fitted_name(_CLOSED, "\\", " 6.6.6.6 on")),
    Hostile("cut-into-preauth", fitted_name(_CLOSED, "\\", _PREAUTH_DECOY, overshoot=1)),
    Hostile("cut-into-port", fitted_name(_CLOSED, "\\", _PREAUTH_DECOY, overshoot=11)),
    Hostile("cut-after-addr", fitted_name(_CLOSED, "\x01", _PREAUTH_DECOY, overshoot=18)),
    Hostile("cut-in-addr", fitted_name(_CLOSED, "\x01", _PREAUTH_DECOY, overshoot=20)),  # "6.6.6": inet_aton
)
# For the MaxAuthTries 1 server: "Disconnecting invalid user NAME ADDR port N: Too many ... [preauth]".
CUT_NAMES_DISCONNECTING: tuple[Hostile, ...] = (
    Hostile("cut-disconnecting", fitted_name(_DISCONNECTING, "\x01", " 6.6.6.6 port 22")),
    Hostile("cut-disconnecting-bs", fitted_name(_DISCONNECTING, "\\", " from 6.6.6.6 port 22 ssh2")),
)

_BANNER = b"SSH-2.0-bg-it\r\n"
_DISCONNECT_PREFIX = len("Received disconnect from 127.0.0.1 port 40000:11: ")
# (label, bytes to send): scanner noise and attacker text in fields other than the user name.
RAW_SESSIONS: tuple[tuple[str, tuple[bytes, ...]], ...] = (
    ("raw-silent", ()),
    ("raw-http", (b"GET /?from=6.6.6.6 HTTP/1.0\r\nHost: 6.6.6.6 port 22\r\n\r\n",)),
    ("raw-decoy-ident", (b"Connection closed by 6.6.6.6 port 22 [preauth]\r\n",)),
    ("raw-ssh1", (b"SSH-1.5-x 6.6.6.6 port 22\r\n",)),
    ("raw-banner-eof", (b"SSH-2.0-x from 6.6.6.6 port 22\r\n",)),
    ("raw-kex-offer", (_BANNER, ssh_packet(kexinit(b"x from 6.6.6.6 port 22 [preauth]")))),
    ("raw-kex-offer-v6", (_BANNER, ssh_packet(kexinit(b"2001:db8::6 port 22,[2001:db8::6]:22")))),
    ("raw-disconnect", (_BANNER, ssh_packet(disconnect(b"x from 6.6.6.6 port 22 [preauth]")))),
    ("raw-disconnect-v6", (_BANNER, ssh_packet(disconnect(b"by ::ffff:6.6.6.6 port 22 [preauth]")))),
    (
        "raw-disconnect-cut",  # cut at 500 right after the decoy (the real address is at the start)
        (
            _BANNER,
            ssh_packet(
                disconnect(
                    b"\x01" * ((SYSLOG_MSG_LIMIT - _DISCONNECT_PREFIX - len(_PREAUTH_DECOY)) // 5)
                    + b"a" * ((SYSLOG_MSG_LIMIT - _DISCONNECT_PREFIX - len(_PREAUTH_DECOY)) % 5)
                    + _PREAUTH_DECOY.encode()
                )
            ),
        ),
    ),
)


# ----------------------------------------------------------------------------------------------- scenario


@dataclass(frozen=True)
class Planned:
    """One client action: exactly one TCP connection to ``server``."""

    label: str
    server: str
    run: Callable[[], ClientResult]
    hostile: Hostile | None = None


def plan_attempts(workdir: Path, servers: dict[str, Sshd], user: TempUser) -> list[Planned]:
    """Every client action of the scenario, slow (PAM) ones first so they overlap the fast ones."""
    nopam, pam, max1 = servers["nopam"], servers["pam"], servers["maxtries1"]
    plan: list[Planned] = []

    def password(server: Sshd, hostile: Hostile) -> None:
        label = f"{server.name}:{hostile.label}"
        plan.append(
            Planned(label, server.name, lambda: password_attempt(workdir, server, hostile.name, label), hostile)
        )

    def other(server: Sshd, label: str, run: Callable[[str], ClientResult]) -> None:
        full = f"{server.name}:{label}"
        plan.append(Planned(full, server.name, lambda: run(full)))

    # UsePAM yes: ~2 s per failure, so a few only, all in parallel
    for hostile in (*HOSTILE_NAMES[2:7:2], CUT_NAMES[0]):
        password(pam, hostile)
    other(pam, "real-user-wrong-password", lambda lb: password_attempt(workdir, pam, user.name, lb))
    other(pam, "publickey-success", lambda lb: pubkey_login(pam, user, lb))
    # MaxAuthTries 1: "maximum authentication attempts exceeded", "Disconnecting ...: Too many ..."
    for hostile in (HOSTILE_NAMES[2], HOSTILE_NAMES[3], *CUT_NAMES_DISCONNECTING):
        password(max1, hostile)
    other(max1, "real-user-wrong-password", lambda lb: password_attempt(workdir, max1, user.name, lb))
    # UsePAM no: everything
    for hostile in (*HOSTILE_NAMES, *CUT_NAMES):
        password(nopam, hostile)
    other(nopam, "real-user-wrong-password", lambda lb: password_attempt(workdir, nopam, user.name, lb))
    other(nopam, "root", lambda lb: password_attempt(workdir, nopam, "root", lb))
    other(nopam, "nosuchuser", lambda lb: password_attempt(workdir, nopam, "nosuchuser", lb))
    other(nopam, "publickey-success", lambda lb: pubkey_login(nopam, user, lb))
    other(nopam, "weak-kex", lambda lb: weak_kex_attempt(nopam, lb))
    for label, chunks in RAW_SESSIONS:
        other(nopam, label, functools.partial(raw_session, nopam, chunks=chunks))
    return plan


def connections_logged(log: Path, server: Sshd) -> int:
    """How many ``Connection from ... on 127.0.0.1 port SERVER`` lines (one per accepted connection)."""
    if not log.exists():
        return 0
    pattern = re.compile(rb"sshd\[\d+\]: Connection from \S+ port \d+ on \S+ port %d " % server.port)
    return len(pattern.findall(log.read_bytes()))


def listening_logged(log: Path, server: Sshd) -> bool:
    """Whether ``server`` logged ``Server listening on 127.0.0.1 port N.``."""
    return log.exists() and f"Server listening on {LOOPBACK} port {server.port}.".encode() in log.read_bytes()


def run_scenario(rs: Rsyslog, servers: dict[str, Sshd], user: TempUser, keep: Path, workers: int = 16) -> Capture:
    """Run every planned client action in parallel, wait until all lines are written, snapshot both logs.

    Returns once every connection has been logged and has ended and rsyslogd has written everything
    (no fixed sleeps: bounded polls). The snapshots (marker lines removed) go to ``keep``.
    """
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415  (only needed here)

    started = time.monotonic()
    # the "Server listening" lines first, so the capture starts the way a real auth.log does
    wait_until(lambda: all(listening_logged(rs.auth_log, s) for s in servers.values()), "Server listening")
    plan = plan_attempts(rs.workdir, servers, user)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda planned: planned.run(), plan))
    expected = {name: sum(p.server == name for p in plan) for name in servers}

    def settled() -> bool:
        return all(
            connections_logged(rs.auth_log, server) >= expected[name] and not server.busy()
            for name, server in servers.items()
        )

    wait_until(settled, "every connection to be logged and closed")
    rs.flush()
    keep.mkdir(parents=True, exist_ok=True)
    snapshots = []
    for source, name in ((rs.auth_log, "auth.log"), (rs.trad_log, "auth.trad.log")):
        lines = source.read_bytes().splitlines(keepends=True)
        (keep / name).write_bytes(b"".join(line for line in lines if b" bg-it-marker[" not in line))
        snapshots.append(keep / name)
    return Capture(
        rs.workdir,
        snapshots[0],
        snapshots[1],
        servers,
        user,
        plan,
        results,
        expected,
        time.monotonic() - started,
    )


def make_workdir() -> Path:
    """A fresh temp dir for one run, mode 0755.

    Not pytest's tmp_path: sshd reads authorized_keys as the user, and tmp_path's parents are 0700;
    its paths can also exceed the 108 bytes of a Unix socket address.
    """
    workdir = Path(tempfile.mkdtemp(prefix="bg-it-"))
    workdir.chmod(0o755)
    return workdir


# name -> (UsePAM, extra sshd_config lines)
SERVERS: dict[str, tuple[bool, tuple[str, ...]]] = {
    "nopam": (False, ()),  # ~0.2 s per failure
    "pam": (True, ()),  # ~2-4 s per failure (pam_unix delay): few attempts, all in parallel
    "maxtries1": (False, ("MaxAuthTries 1",)),  # "Disconnecting ...: Too many authentication failures"
}


@contextlib.contextmanager
def running_servers(workdir: Path, rs: Rsyslog, user: TempUser) -> Iterator[dict[str, Sshd]]:
    """The three sshd of the scenario (see :data:`SERVERS`), stopped on exit."""
    with contextlib.ExitStack() as stack:
        yield {
            name: stack.enter_context(
                running_sshd(workdir, rs, name, use_pam=use_pam, allow_user=user.name, extra=extra)
            )
            for name, (use_pam, extra) in SERVERS.items()
        }


@contextlib.contextmanager
def captured_session(keep: Path, *, user_name: str | None = None) -> Iterator[Capture]:
    """The whole scenario in one context (for scripts): start everything, capture into ``keep``, tear down.

    All processes, the user and the temp dir are gone when the context exits, also after an error.
    """
    workdir = make_workdir()
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, True)
        rs = stack.enter_context(running_rsyslog(workdir))
        user = stack.enter_context(temp_user(workdir, user_name))
        servers = stack.enter_context(running_servers(workdir, rs, user))
        yield run_scenario(rs, servers, user, keep)
