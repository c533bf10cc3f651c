"""End to end: real sshd -> real rsyslogd -> auth.log -> bastiond -> nftables in the bastion's namespace.

Three namespaces joined by a bridge in the bastion namespace (names carry a random suffix, so two runs
can go in parallel)::

    bge2e-a-*  10.232.0.2  --+
                             +-- bridge 10.232.0.1 in bge2e-bas-*: sshd on 10.232.0.1:22 (UsePAM no)
    bge2e-b-*  10.232.0.3  --+

sshd logs through ``syslog()`` into a private rsyslogd (``realparts``: the privns trick), which writes a
genuine Debian 12 auth.log in a temp dir. bastiond runs in the root namespace, follows that file and bans
with ``firewall: {backend: nftables, netns: <bastion ns>}``; 10.232.0.3 is allowlisted in its config.
The rule is our own (3 failures -> 6 s, then x5), so the module stays well under a minute. A dropped SYN
leaves no sshd line, so a ban is proven by the client's connect timing out.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import netns
import pytest
import realparts

pytestmark = [pytest.mark.root, pytest.mark.sshd, pytest.mark.rsyslog]

BASTION, ATTACKER_A, ATTACKER_B = "10.232.0.1", "10.232.0.2", "10.232.0.3"
THRESHOLD = 3  # failures that ban (our rule), within 10 minutes
BAN_SECS = 6  # first ban; the next one for the same address is 5 x longer
WAIT = 10.0  # bound of every wait for something the daemon or the kernel should do
USER = "bgnobody"  # no such account: sshd logs "Failed password for invalid user bgnobody from ..."
SSH_ARGS = ("-F", "/dev/null", "-o", "ConnectTimeout=3", *realparts.SSH_COMMON, *realparts.SSH_PASSWORD)


@dataclass
class Lab:
    """The running parts of the scenario."""

    workdir: Path
    bastion: str
    ns_a: str
    ns_b: str
    rsyslog: realparts.Rsyslog
    daemon: netns.Bastiond

    @property
    def auth_log(self) -> Path:
        """The genuine auth.log written by rsyslogd (RFC 3339 stamps)."""
        return self.rsyslog.auth_log

    def banned(self) -> dict[str, float]:
        """Elements of the daemon's IPv4 ban set in the bastion namespace, with seconds left."""
        return netns.set_elements(self.bastion, "ban4")

    def ctl_targets(self) -> set[str]:
        """Targets ``bastionctl bans list -o json`` shows."""
        return {ban["target"] for ban in self.daemon.ctl_bans()}


def _failures(log: Path, address: str) -> list[bytes]:
    """The ``Failed password ... from ADDRESS`` lines of the auth.log so far."""
    pattern = re.compile(rb"^.* sshd\[\d+\]: Failed password for .* from %s port \d+ ssh2$" % re.escape(address.encode()), re.M)
    return pattern.findall(log.read_bytes()) if log.exists() else []


def _wrong_passwords(ns: str, count: int) -> list[str]:
    """``count`` wrong-password logins at once from namespace ``ns`` (sshpass + ssh, one connection each);
    what each ssh said on stderr."""
    argv = ["ip", "netns", "exec", ns, "sshpass", "-p", realparts.WRONG_PASSWORD, "ssh", *SSH_ARGS,
            "-p", "22", f"{USER}@{BASTION}", "true"]

    def attempt(_: int) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, timeout=30, check=False)
        except subprocess.TimeoutExpired:
            return "timed out after 30 s"
        return done.stderr.decode(errors="replace").strip()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(attempt, range(count)))


def _sshd_config(workdir: Path) -> Path:
    home = workdir / "sshd"
    home.mkdir()
    hostkey = home / "ssh_host_ed25519_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(hostkey)], check=True, capture_output=True)
    config = home / "sshd_config"
    config.write_text(
        "\n".join([
            "Port 22", f"ListenAddress {BASTION}", "AddressFamily inet", f"HostKey {hostkey}",
            f"PidFile {home / 'sshd.pid'}", "LogLevel VERBOSE", "SyslogFacility AUTH", "UsePAM no",
            "PasswordAuthentication yes", "KbdInteractiveAuthentication no", "PubkeyAuthentication yes",
            "PermitRootLogin no", "MaxStartups 200:30:400", "LoginGraceTime 20", "UseDNS no",
            "PrintMotd no", "X11Forwarding no", "AllowTcpForwarding no", "PermitTunnel no",
        ]) + "\n"
    )
    return config


@contextlib.contextmanager
def _running_sshd(workdir: Path, rs: realparts.Rsyslog, bastion: str) -> Iterator[subprocess.Popen[bytes]]:
    """sshd -D inside the bastion namespace, in a private mount namespace whose /dev/log is our rsyslogd."""
    config = _sshd_config(workdir)
    check, env = realparts._privns(workdir, rs, [str(realparts.SSHD), "-t", "-f", str(config)])
    tested = subprocess.run(check, env=env, capture_output=True, check=False, timeout=30)
    if tested.returncode != 0:
        raise RuntimeError(f"sshd -t rejected {config}: {tested.stderr.decode(errors='replace')}")
    argv, env = realparts._privns(workdir, rs, [str(realparts.SSHD), "-D", "-f", str(config)])
    with (workdir / "sshd.stderr").open("wb") as err:
        proc = subprocess.Popen(["ip", "netns", "exec", bastion, *argv], env=env,
                                stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    try:
        listening = f"Server listening on {BASTION} port 22.".encode()
        up = netns.wait_until(
            lambda: proc.poll() is not None or (rs.auth_log.exists() and listening in rs.auth_log.read_bytes()),
            timeout=20,
        )
        if not up or proc.poll() is not None:
            raise RuntimeError(f"sshd did not start: {(workdir / 'sshd.stderr').read_text(errors='replace')}")
        yield proc
    finally:
        realparts.stop_process(proc)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    """Namespaces, rsyslogd, sshd and bastiond for the module; all stopped and deleted afterwards."""
    reason = netns.missing(("nft", "sshpass", "rsyslogd")) or realparts.missing_requirements()
    if reason:
        pytest.skip(f"end-to-end bastion test: {reason}")
    tables_before = netns.root_tables()
    workdir = realparts.make_workdir()
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, True)
        rs = stack.enter_context(realparts.running_rsyslog(workdir))
        try:
            bastion = stack.enter_context(netns.netns("bge2e-bas"))
            ns_a = stack.enter_context(netns.netns("bge2e-a"))
            ns_b = stack.enter_context(netns.netns("bge2e-b"))
        except netns.UnavailableError as exc:
            pytest.skip(f"end-to-end bastion test: {exc}")
        netns.bridge(bastion, f"{BASTION}/24", {ns_a: f"{ATTACKER_A}/24", ns_b: f"{ATTACKER_B}/24"}, netns.token())
        stack.enter_context(_running_sshd(workdir, rs, bastion))
        rules = netns.write_rules(workdir / "rules", count=THRESHOLD, duration=f"{BAN_SECS}s", factor=5)
        (workdir / "daemon").mkdir()
        daemon = netns.Bastiond(workdir / "daemon", log=rs.auth_log, rules_dir=rules, netns=bastion,
                                allowlist=[f"{ATTACKER_B}/32"])
        stack.callback(daemon.kill)
        daemon.start()
        yield Lab(workdir, bastion, ns_a, ns_b, rs, daemon)
    assert netns.root_tables() == tables_before, "the root namespace's nftables tables changed"


class _BanWatch:
    """Timestamps (monotonic) the THRESHOLD-th failure line of an address appearing in auth.log, and the
    address appearing in the nft ban set (polled with ``nft -j list set`` in a loop)."""

    def __init__(self, lab: Lab, address: str) -> None:
        self.lab, self.address = lab, address
        self.already = len(_failures(lab.auth_log, address))
        self.line_at: float | None = None
        self.line: bytes = b""
        self.set_at: float | None = None
        self._threads = [threading.Thread(target=self._file, daemon=True), threading.Thread(target=self._set, daemon=True)]
        self._deadline = time.monotonic() + WAIT + 5
        for thread in self._threads:
            thread.start()

    def _file(self) -> None:
        while self.line_at is None and time.monotonic() < self._deadline:
            lines = _failures(self.lab.auth_log, self.address)
            if len(lines) >= self.already + THRESHOLD:
                self.line_at = time.monotonic()
                self.line = lines[self.already + THRESHOLD - 1]
            time.sleep(0.002)

    def _set(self) -> None:
        while self.set_at is None and time.monotonic() < self._deadline:
            if self.address in self.lab.banned():
                self.set_at = time.monotonic()

    def join(self) -> None:
        """Wait for both (bounded)."""
        for thread in self._threads:
            thread.join(timeout=WAIT + 10)


def _ban(lab: Lab, address: str) -> float:
    """Make THRESHOLD wrong-password logins from ``address``'s namespace; assert it lands in the set;
    print and return the seconds from the threshold-crossing line in auth.log to the element in the set."""
    ns = lab.ns_a if address == ATTACKER_A else lab.ns_b
    watch = _BanWatch(lab, address)
    _wrong_passwords(ns, THRESHOLD)
    watch.join()
    assert watch.line_at is not None, f"sshd/rsyslog never wrote {THRESHOLD} failures for {address}"
    assert watch.set_at is not None, f"{address} not banned within {WAIT:.0f} s:\n{lab.daemon.output()}"
    latency = watch.set_at - watch.line_at
    print(f"\ne2e: {address} in the nft set {latency * 1000:.0f} ms after the threshold-crossing line "
          f"appeared in auth.log (polling resolution ~10 ms): {watch.line.decode(errors='replace')}")
    return latency


def test_ban_allowlist_and_expiry(lab: Lab) -> None:
    """Failures from A get it dropped in the kernel within seconds, allowlisted B never is, A's ban expires on time."""
    assert netns.tcp_probe(lab.ns_a, BASTION, 22) == "ok"
    assert netns.tcp_probe(lab.ns_b, BASTION, 22) == "ok"

    # B: twice the threshold, all failing, and never banned.
    said = _wrong_passwords(lab.ns_b, 2 * THRESHOLD)
    assert all("Permission denied" in text for text in said), said
    assert netns.wait_until(lambda: len(_failures(lab.auth_log, ATTACKER_B)) >= 2 * THRESHOLD, WAIT)
    assert lab.daemon.wait_caught_up(WAIT), "bastiond did not read B's lines"
    assert ATTACKER_B not in lab.banned()
    assert ATTACKER_B not in lab.ctl_targets()

    # A: the threshold, then dropped.
    _ban(lab, ATTACKER_A)
    banned_at = time.monotonic()
    assert netns.tcp_probe(lab.ns_a, BASTION, 22, timeout=2.0) == "timeout"
    bans = {ban["target"]: ban for ban in lab.daemon.ctl_bans()}
    assert set(bans) == {ATTACKER_A}, bans
    assert bans[ATTACKER_A]["rule"] == "sshd-bruteforce"
    assert 0 < bans[ATTACKER_A]["remaining_secs"] <= BAN_SECS
    assert netns.tcp_probe(lab.ns_b, BASTION, 22) == "ok", "allowlisted B must still get in"
    assert ATTACKER_B not in lab.banned()

    # The kernel lifts the ban by itself.
    assert netns.wait_until(lambda: ATTACKER_A not in lab.banned(), WAIT, step=0.05), "the ban did not expire"
    print(f"e2e: {ATTACKER_A} left the set {time.monotonic() - banned_at:.2f} s after it appeared ({BAN_SECS} s ban)")
    assert netns.tcp_probe(lab.ns_a, BASTION, 22) == "ok"
    assert ATTACKER_A not in lab.ctl_targets()


def test_bans_survive_restart(lab: Lab) -> None:
    """A ban outlives a stopped daemon in the kernel, and after a flushed set (a reboot) the restarted daemon restores it."""
    assert netns.wait_until(lambda: ATTACKER_A not in lab.banned(), WAIT, step=0.05)
    _ban(lab, ATTACKER_A)
    bans = {ban["target"]: ban for ban in lab.daemon.ctl_bans()}
    assert ATTACKER_A in bans, bans

    assert lab.daemon.stop() == 0, lab.daemon.output()
    assert ATTACKER_A in lab.banned(), "the ban must stay in the kernel while the daemon is down"

    netns.nft(lab.bastion, "flush", "set", "inet", netns.TABLE, "ban4")  # what a reboot does to the kernel
    assert ATTACKER_A not in lab.banned()

    since = len(lab.daemon.lines)
    started = time.monotonic()
    lab.daemon.start()
    assert netns.wait_until(lambda: ATTACKER_A in lab.banned(), WAIT), f"not restored:\n{lab.daemon.output()}"
    print(f"\ne2e: ban restored into the flushed set {time.monotonic() - started:.2f} s after bastiond started")
    assert lab.daemon.first_line("restored 1 active bans", since) is not None, lab.daemon.output()
    left = lab.banned()[ATTACKER_A]
    assert 0 < left <= bans[ATTACKER_A]["remaining_secs"] + 1
    assert ATTACKER_A in lab.ctl_targets()
    assert netns.tcp_probe(lab.ns_a, BASTION, 22, timeout=2.0) == "timeout"
    assert netns.tcp_probe(lab.ns_b, BASTION, 22) == "ok"
