"""A real journald, a real sshd and forged lines: JournalFollower returns what sshd wrote, resumes exactly.

The host has no journald (no systemd as PID 1), so the test starts its own, as testing-real-parts.md section 7
describes: ``unshare -m --propagation private`` gives a mount namespace in which ``/run`` is a fresh tmpfs
(journald's sockets and its volatile journal, sshd's privilege separation directory) and ``/dev`` a small
tmpfs whose ``log`` points at journald's syslog socket. journald, sshd, journalctl and every writer must run
inside that namespace, so this module is also the driver: run as ``python3 test_journald_source.py --driver
WORKDIR`` it does the work in there and prints one JSON object, which the tests below assert on. Leaving
the namespace unmounts everything; the host's ``/run``, ``/dev`` and ``/var/log/journal`` are never touched.

Why a real sshd rather than an interpreter copied to a file named ``sshd``: both give ``_COMM=sshd``, but
only the real one shows what the daemon will meet (the monitor logging as uid 0 from ``/usr/sbin/sshd``,
the message texts of OpenSSH 9.2), and it costs well under a second with ``UsePAM no`` and clients in
a forced ``SSH_ASKPASS`` (no password delay). The renamed-process trick is used, on purpose, as the attack: a process
running as ``nobody`` calls ``prctl(PR_SET_NAME, "sshd")`` and is logged with ``_COMM=sshd``, so the test
records that such entries carry the sender's real ``_UID`` and ``_EXE``.

What it shows: entries arrive with the program from ``_COMM`` (trusted), a ``logger -t sshd`` line is not
returned, a follower resumed from a saved cursor delivers exactly the newer entries (the two runs together
equal one uninterrupted run: none lost, none repeated), ``from_end`` starts at new entries, and a bad
cursor ends in :class:`JournalctlError` carrying journalctl's stderr. About 2 s.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import syslog
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import realparts

from bastion_guard.events import Event
from bastion_guard.parsing import LineParser
from bastion_guard.sources.journald import (
    JournalctlError,
    JournalFollower,
    JournalPosition,
    JournalRecord,
    journal_event,
)

JOURNALD = Path("/lib/systemd/systemd-journald")
SSHD = Path("/usr/sbin/sshd")
TOOLS = ("journalctl", "logger", "unshare", "mount", "ssh", "ssh-keygen")
DRIVER_TIMEOUT = 60.0  # seconds for the whole run; it normally takes 2
WAIT_TIMEOUT = 15.0  # seconds for any one expected journal entry
NOBODY = 65534
FORGED_BY_LOGGER = "Failed password for root from 6.6.6.6 port 22 ssh2"
FORGED_BY_RENAMED = "Failed password for root from 7.7.7.7 port 22 ssh2"

pytestmark = [pytest.mark.root, pytest.mark.sshd]

# sh SETUP WORKDIR CMD...: run inside a fresh private mount namespace; sets up journald, then runs CMD.
SETUP_SH = r"""set -eu
work=$1; shift
# /run: journald's sockets and volatile journal, and sshd's privilege separation directory.
mount -t tmpfs -o mode=755,size=32m bg-jd-run /run
mkdir -p /run/systemd/journald.conf.d /run/log /run/sshd
# Volatile storage, no kernel messages, no rate limit: only what the test writes, kept under /run.
printf '[Journal]\nStorage=volatile\nReadKMsg=no\nForwardToSyslog=no\nForwardToWall=no\nRateLimitBurst=0\n' \
  >/run/systemd/journald.conf.d/bg-test.conf
[ ! -d /var/log/journal ] || mount -t tmpfs -o mode=755,size=1m bg-jd-persist /var/log/journal
# /dev: the few devices needed, and log -> journald's syslog socket (glibc's syslog() only knows /dev/log).
dev=$(mktemp -d "$work/dev.XXXXXX")
mount -t tmpfs -o mode=755,size=64k bg-jd-dev "$dev"
for n in null zero full random urandom tty; do
  [ -e "/dev/$n" ] || continue
  touch "$dev/$n"; mount --bind "/dev/$n" "$dev/$n"
done
mkdir "$dev/pts" "$dev/shm"
if [ -d /dev/pts ]; then mount --bind /dev/pts "$dev/pts"; fi
if [ -d /dev/shm ]; then mount --bind /dev/shm "$dev/shm"; fi
ln -s pts/ptmx "$dev/ptmx"; ln -s /proc/self/fd "$dev/fd"
ln -s /proc/self/fd/0 "$dev/stdin"; ln -s /proc/self/fd/1 "$dev/stdout"; ln -s /proc/self/fd/2 "$dev/stderr"
ln -s /run/systemd/journal/dev-log "$dev/log"
mount --move "$dev" /dev
rmdir "$dev"
SYSTEMD_LOG_TARGET=console /lib/systemd/systemd-journald >"$work/journald.log" 2>&1 &
echo $! >"$work/journald.pid"
n=0
until [ -S /run/systemd/journal/socket ] && [ -S /run/systemd/journal/dev-log ]; do
  n=$((n + 1))
  if [ "$n" -gt 500 ]; then echo "journald did not start" >&2; cat "$work/journald.log" >&2; exit 1; fi
  sleep 0.01
done
rc=0
"$@" || rc=$?
kill "$(cat "$work/journald.pid")" 2>/dev/null || true
wait
exit "$rc"
"""

SSHD_CONFIG = """Port {port}
ListenAddress 127.0.0.1
AddressFamily inet
HostKey {work}/ssh_host_ed25519_key
PidFile {work}/sshd.pid
LogLevel VERBOSE
SyslogFacility AUTH
UsePAM no
PasswordAuthentication yes
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthorizedKeysFile none
PermitRootLogin no
UseDNS no
MaxStartups 100
"""


# ------------------------------------------------------------------------------------------ the tests


def missing_requirements() -> str | None:
    """Why this machine cannot run the test, or None when it can."""
    if os.geteuid() != 0:
        return "needs root (unshare -m, mount, journald, sshd)"
    for path in (JOURNALD, SSHD):
        if not os.access(path, os.X_OK):
            return f"{path} missing (apt-get install systemd openssh-server)"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"missing tools: {', '.join(missing)} (apt-get install systemd openssh-server openssh-client)"
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        return f"unshare -m failed (no CAP_SYS_ADMIN?): {probe.stderr.decode(errors='replace').strip()}"
    return None


def _kill_leftover(pidfile: Path, comm: str) -> None:
    """Kill the process in ``pidfile`` if it still runs as ``comm`` in another mount namespace (ours)."""
    with contextlib.suppress(OSError, ValueError):
        pid = int(pidfile.read_text().split()[0])
        proc = Path(f"/proc/{pid}")
        ours = (proc / "ns/mnt").readlink() != Path("/proc/self/ns/mnt").readlink()
        if ours and (proc / "comm").read_text().strip() == comm:
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def run() -> Iterator[dict[str, Any]]:
    """Run the driver in its own mount namespace once per module; its JSON result."""
    reason = missing_requirements()
    if reason is not None:
        pytest.skip(f"journald integration test: {reason}")
    work = Path(tempfile.mkdtemp(prefix="bg-jd-", dir="/tmp"))
    try:
        setup = work / "setup.sh"
        setup.write_text(SETUP_SH)
        argv = ["unshare", "-m", "--propagation", "private", "sh", str(setup), str(work)]
        argv += [sys.executable, str(Path(__file__).resolve()), "--driver", str(work)]
        # Own session: on a timeout the whole run (journald, sshd, driver) goes with one killpg.
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=DRIVER_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            pytest.fail(f"driver timed out after {DRIVER_TIMEOUT:.0f} s:\n{err.decode(errors='replace')}")
        assert proc.returncode == 0, f"driver failed ({proc.returncode}):\n{err.decode(errors='replace')}"
        yield json.loads(out.decode().splitlines()[-1])
    finally:
        _kill_leftover(work / "sshd.pid", "sshd")
        _kill_leftover(work / "journald.pid", "systemd-journal")
        shutil.rmtree(work, ignore_errors=True)


def _by_user(records: list[dict[str, Any]], user: str) -> list[dict[str, Any]]:
    return [record for record in records if user in record["message"]]


def test_sshd_entries_arrive_with_the_trusted_program(run: dict[str, Any]) -> None:
    """sshd's own lines come back with program, pid, uid and exe from journald's fields."""
    mine = _by_user(run["first"]["records"], run["users"][0])
    assert any(record["message"].startswith("Invalid user ") for record in mine), mine
    for record in mine:
        assert record["program"] == "sshd"
        assert record["trusted"] is True
        assert record["uid"] == 0
        assert record["exe"] == str(SSHD)
        assert isinstance(record["pid"], int)
        assert record["pid"] > 1
        assert record["host"]
        assert abs(record["epoch"] - run["started"]) < 120


def test_sshd_entries_parse_into_events_for_the_real_client(run: dict[str, Any]) -> None:
    """journal_event turns the real sshd's records into events naming 127.0.0.1, never a forged address."""
    records = [record for record in run["first"]["records"] + run["second"]["records"] if record["uid"] == 0]
    events = [record["event"] for record in records if record["event"] is not None]
    for user in run["users"][:2]:
        kinds = {event["kind"] for event in events if event["user"] == user}
        assert {"invalid_user", "auth_failure", "preauth_close"} <= kinds, events
    assert {event["ip"] for event in events} == {"127.0.0.1"}
    assert {event["program"] for event in events} == {"sshd"}
    assert all(event["source"] == "journal" for event in events)


def test_logger_tagged_sshd_is_not_returned(run: dict[str, Any]) -> None:
    """``logger -t sshd`` reaches the journal as SYSLOG_IDENTIFIER=sshd but with _COMM=logger: filtered."""
    forged = [entry for entry in run["tagged_sshd"] if entry["MESSAGE"] == FORGED_BY_LOGGER]
    assert forged, run["tagged_sshd"]
    assert all(entry.get("_COMM") in {"logger", None} for entry in forged)
    for phase in ("first", "second", "whole"):
        assert not [record for record in run[phase]["records"] if "6.6.6.6" in record["message"]]


def test_renamed_process_shows_its_real_uid_and_exe(run: dict[str, Any]) -> None:
    """A process that named itself sshd (prctl) matches _COMM=sshd, but its uid gives it away and it is not parsed.

    This is the limit of matching on _COMM: the follower returns the record as program sshd, so
    journal_event also requires uid 0 for sshd (sshd's monitor logs as root).
    """
    renamed = [record for record in run["first"]["records"] if record["message"] == FORGED_BY_RENAMED]
    assert len(renamed) == 1, run["first"]["records"]
    assert renamed[0]["program"] == "sshd"
    assert renamed[0]["trusted"] is True
    assert renamed[0]["uid"] == NOBODY
    assert renamed[0]["exe"] != str(SSHD)
    assert renamed[0]["event"] is None, "a renamed non-root process must not be parsed as sshd"


def test_resume_from_saved_cursor_loses_and_repeats_nothing(run: dict[str, Any]) -> None:
    """A follower started from the first one's last position returns exactly the entries after it."""
    first = [record["cursor"] for record in run["first"]["records"]]
    second = [record["cursor"] for record in run["second"]["records"]]
    whole = [record["cursor"] for record in run["whole"]["records"]]
    assert run["first"]["position"] == first[-1]
    assert not set(first) & set(second)
    assert _by_user(run["second"]["records"], run["users"][1])
    assert not _by_user(run["second"]["records"], run["users"][0])
    assert whole[: len(first) + len(second)] == first + second


def test_from_end_starts_at_new_entries(run: dict[str, Any]) -> None:
    """With from_end the follower skips everything written before it started."""
    records = run["from_end"]["records"]
    assert records[0]["program"] == "logger"
    assert records[0]["message"].startswith("marker ")
    assert _by_user(records, run["users"][2])
    assert not _by_user(records, run["users"][0])
    assert not _by_user(records, run["users"][1])


def test_bad_cursor_raises_with_journalctl_stderr(run: dict[str, Any]) -> None:
    """journalctl rejects a cursor it cannot parse; the follower raises with its message and status."""
    assert run["bad_cursor"]["error"] == "JournalctlError"
    assert run["bad_cursor"]["returncode"] == 1
    assert "Failed to seek to cursor" in run["bad_cursor"]["stderr"]


# ------------------------------------------------------------------------------------------ the driver
# Everything below runs inside the namespace, started by the fixture above.


def _as_dict(record: JournalRecord, parser: LineParser) -> dict[str, Any]:
    """A record as JSON, with what journal_event made of it under ``event`` (None: no event)."""
    result = journal_event(parser, record)
    fields = {name: getattr(record, name) for name in JournalRecord.__dataclass_fields__}
    return {**fields, "event": result._asdict() if isinstance(result, Event) else None}


def follow(follower: JournalFollower, done: Callable[[list[JournalRecord]], bool]) -> dict[str, Any]:
    """Read ``follower`` until ``done(records so far)``; the records, events and last position, as JSON."""
    records: list[JournalRecord] = []
    position: JournalPosition | None = None
    deadline = time.monotonic() + WAIT_TIMEOUT
    with follower:
        while not done(records):
            if time.monotonic() > deadline:
                raise TimeoutError(f"gave up after {len(records)} records: {[r.message for r in records]}")
            batch = follower.read_available()
            if batch is None:
                follower.wait(0.2)
                continue
            records += batch.records
            position = batch.position
    parser = LineParser(time.time())
    return {
        "records": [_as_dict(record, parser) for record in records],
        "position": position.cursor if position is not None else None,
    }


def sshd_said(*texts: str) -> Callable[[list[JournalRecord]], bool]:
    """A ``done`` test: sshd wrote a message containing each of ``texts``."""

    def done(records: list[JournalRecord]) -> bool:
        messages = [record.message for record in records if record.program == "sshd"]
        return all(any(text in message for message in messages) for text in texts)

    return done


def start_sshd(work: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A real ``sshd -D`` on 127.0.0.1 logging through syslog() into our journald; its process and port."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / "ssh_host_ed25519_key")], check=True
    )
    port = realparts.free_port()
    config = work / "sshd_config"
    config.write_text(SSHD_CONFIG.format(port=port, work=work))
    proc = subprocess.Popen([str(SSHD), "-D", "-f", str(config)], stdin=subprocess.DEVNULL)
    realparts.wait_until(lambda: realparts.is_listening(port) or proc.poll() is not None, "sshd to listen")
    if proc.poll() is not None:
        raise RuntimeError(f"sshd exited with {proc.returncode}")
    return proc, port


def failed_login(work: Path, port: int, user: str) -> None:
    """A real client tries one wrong password for a user that does not exist.

    The password comes from SSH_ASKPASS (forced, so no terminal and no sshpass); with ``UsePAM no`` sshd
    answers at once, without PAM's failure delay.
    """
    askpass = work / "askpass.sh"
    if not askpass.exists():
        askpass.write_text("#!/bin/sh\necho not-the-password\n")
        askpass.chmod(0o700)
    env = {**os.environ, "SSH_ASKPASS": str(askpass), "SSH_ASKPASS_REQUIRE": "force"}
    subprocess.run(
        ["ssh", "-F", "/dev/null", "-p", str(port), "-o", "StrictHostKeyChecking=no",
         "-o", "UserKnownHostsFile=/dev/null", "-o", "PreferredAuthentications=password",
         "-o", "NumberOfPasswordPrompts=1", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5",
         f"{user}@127.0.0.1", "true"],
        stdin=subprocess.DEVNULL, capture_output=True, env=env, timeout=WAIT_TIMEOUT, check=False,
    )  # fmt: skip


def log_as_renamed_nobody(message: str) -> None:
    """Fork a child that becomes nobody, names itself sshd and syslogs ``message``: a forged _COMM.

    Called before any thread is started (fork is then safe). The child lingers a moment, so journald
    still finds it in /proc when it reads the sender's metadata.
    """
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            ctypes.CDLL(None).prctl(15, b"sshd", 0, 0, 0)  # PR_SET_NAME
            syslog.openlog("sshd", syslog.LOG_PID, syslog.LOG_AUTH)
            syslog.syslog(syslog.LOG_INFO, message)
            time.sleep(0.5)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def drive(work: Path) -> dict[str, Any]:
    """Everything the tests assert on, done inside the namespace."""
    # Child subreaper: sshd's per-connection processes that outlive the listener are reaped here, not by PID 1.
    ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    users = [f"bgjd{index}_{secrets.token_hex(3)}" for index in range(3)]
    result: dict[str, Any] = {"users": users, "started": time.time()}
    log_as_renamed_nobody(FORGED_BY_RENAMED)
    # One long-lived logger: its entries keep _COMM=logger (a logger that exits at once may lose it).
    logger = subprocess.Popen(["logger", "--socket-errors=on", "-t", "sshd"], stdin=subprocess.PIPE)
    assert logger.stdin is not None  # stdin=PIPE
    sshd, port = start_sshd(work)
    try:
        logger.stdin.write(f"{FORGED_BY_LOGGER}\n".encode())
        logger.stdin.flush()
        # The forged lines were written first: a follower that has user 0's lines has passed them.
        failed_login(work, port, users[0])
        closed = "Connection closed by invalid user {} 127.0.0.1"
        result["first"] = follow(JournalFollower(None), sshd_said(closed.format(users[0])))
        failed_login(work, port, users[1])
        saved = JournalPosition(result["first"]["position"])
        result["second"] = follow(JournalFollower(saved), sshd_said(closed.format(users[1])))
        result["whole"] = follow(JournalFollower(None), sshd_said(closed.format(users[1])))
        result["from_end"] = from_end(work, logger, port, users[2], closed.format(users[2]))
        result["bad_cursor"] = bad_cursor()
        tagged = subprocess.run(
            ["journalctl", "--no-pager", "-o", "json", "SYSLOG_IDENTIFIER=sshd"], capture_output=True, check=True
        )
        result["tagged_sshd"] = [json.loads(line) for line in tagged.stdout.splitlines()]
    finally:
        logger.stdin.close()
        logger.wait(5)
        realparts.stop_process(sshd)
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, 0):  # every orphan left to us; they were all signalled above
                pass
    return result


def from_end(work: Path, logger: subprocess.Popen[bytes], port: int, user: str, closed: str) -> dict[str, Any]:
    """A follower from the end: markers until it sees one (it is then reading), then a new login."""
    assert logger.stdin is not None  # stdin=PIPE
    deadline = time.monotonic() + WAIT_TIMEOUT
    records: list[JournalRecord] = []
    with JournalFollower(None, from_end=True, programs=("sshd", "logger")) as follower:
        while not any(record.program == "logger" for record in records):
            if time.monotonic() > deadline:
                raise TimeoutError("the from_end follower never saw a marker")
            logger.stdin.write(f"marker {time.monotonic()}\n".encode())
            logger.stdin.flush()
            follower.wait(0.2)
            batch = follower.read_available()
            records += batch.records if batch is not None else []
        failed_login(work, port, user)
        rest = follow(follower, lambda more: sshd_said(closed)(records + more))
    parser = LineParser(time.time())
    rest["records"] = [_as_dict(record, parser) for record in records] + rest["records"]
    return rest


def bad_cursor() -> dict[str, Any]:
    """What a follower given a cursor journalctl cannot parse reports."""
    with JournalFollower(JournalPosition("not-a-cursor")) as follower:
        deadline = time.monotonic() + WAIT_TIMEOUT
        while time.monotonic() < deadline:
            follower.wait(0.5)
            try:
                follower.read_available()
            except JournalctlError as error:
                return {"error": type(error).__name__, "returncode": error.returncode, "stderr": error.stderr}
    return {"error": None}


if __name__ == "__main__" and sys.argv[1:2] == ["--driver"]:
    print(json.dumps(drive(Path(sys.argv[2]))))  # the driver's result, read by the fixture
