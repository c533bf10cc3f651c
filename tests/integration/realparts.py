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
from dataclasses import dataclass, field
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

REQUIRED_TOOLS = ("rsyslogd", "sshpass", "ssh", "ssh-keygen", "unshare", "mount", "useradd", "userdel", "usermod")


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
            ["unshare", "-m", "--propagation", "private", "true"], capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare -m failed: {exc}"
    if probe.returncode != 0:
        return f"unshare -m failed (no CAP_SYS_ADMIN?): {probe.stderr.decode(errors='replace').strip()}"
    return None


# ----------------------------------------------------------------------------------------------- waiting


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Poll ``predicate`` (every 20 ms at first, backing off to 100 ms) until true; raise after ``timeout``."""
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
    """Whether something listens on 127.0.0.1:``port`` (read from /proc/net/tcp: no connection, no log noise)."""
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


def stop_process(proc: subprocess.Popen[bytes], grace: float = 2.0) -> None:
    """SIGTERM ``proc`` and its descendants (by pid), wait up to ``grace`` s, then SIGKILL what is left."""
    if proc.poll() is not None:
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


@contextlib.contextmanager
def running_sshd(
    workdir: Path, rs: Rsyslog, name: str, *, use_pam: bool, allow_user: str, extra: Sequence[str] = ()
) -> Iterator[Sshd]:
    """Start a real ``sshd -D`` (no ``-E``: it logs via syslog to ``rs``); stop it and its children on exit."""
    home = workdir / f"sshd-{name}"
    home.mkdir()
    hostkey = home / "ssh_host_ed25519_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"bg-it-{name}", "-f", str(hostkey)],
        check=True,
        capture_output=True,
    )
    config = home / "sshd_config"
    for _try in range(5):  # a port from free_port() can be taken before sshd binds it: retry with another
        port = free_port()
        config.write_text(
            sshd_config(
                port=port, hostkey=hostkey, pidfile=home / "sshd.pid", use_pam=use_pam, allow_user=allow_user,
                extra=extra,
            )
        )
        argv, env = _privns(workdir, rs, [str(SSHD), "-t", "-f", str(config)])
        test = subprocess.run(argv, env=env, capture_output=True, check=False, timeout=30)
        if test.returncode != 0:
            raise RuntimeError(f"sshd -t rejected {config}: {test.stderr.decode(errors='replace')}")
        argv, env = _privns(workdir, rs, [str(SSHD), "-D", "-f", str(config)])
        errlog = (home / "sshd.stderr").open("wb")
        server = Sshd(name, port, config, use_pam)
        server.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=errlog, stderr=errlog)
        errlog.close()
        try:
            wait_until(lambda: is_listening(port) or server.proc is None or server.proc.poll() is not None,
                       f"sshd {name} to listen on {port}")
        except BaseException:
            stop_process(server.proc)
            raise
        if server.proc.poll() is None:
            break
    else:
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


def password_attempt(workdir: Path, server: Sshd, user: str, label: str, password: str = "wrong") -> ClientResult:
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
    results: list[ClientResult] = field(default_factory=list)
    expected_connections: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
