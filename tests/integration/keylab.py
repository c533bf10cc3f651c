"""A bastion and two targets in network namespaces, real accounts and keys: the key lifecycle's test bed.

::

    bgk-cli-*  10.233.0.2 --- bridge 10.233.0.1 [bgk-bas-*] bridge 10.233.1.1 --- 10.233.1.2  bgk-t1-*
                                 sshd :22 (RevokedKeys KRL,                  \\--- 10.233.1.3  bgk-t2-*
                                 logs via rsyslogd)                              sshd :22 each (-E file)

``ip_forward`` is 0 in every namespace, so the client reaches the targets only through the bastion's
sshd (``ssh -J``). Every sshd runs in a private mount namespace (``realparts`` privns: its own /dev/log and
/run/sshd); bastionctl and bastiond run in the bastion namespace the same way, so ``sshd -T`` works for
them as on a real bastion. Accounts are ``bgk`` + random hex, homes under the temp dir, deleted after.
No pytest here: the test module turns :class:`netns.UnavailableError` into a skip.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import netns
import realparts

BASTION, CLIENT = "10.233.0.1", "10.233.0.2"
T1, T2 = "10.233.1.2", "10.233.1.3"
TARGET_FILES = {T1: ".ssh/authorized_keys_t1", T2: ".ssh/authorized_keys_t2"}


@dataclass
class Lab:
    """The running parts and the paths the tests look at."""

    workdir: Path
    rsyslog: realparts.Rsyslog
    bastion: str
    client: str
    targets: dict[str, str]  # address -> namespace
    users: dict[str, realparts.TempUser]  # role -> account
    krl: Path
    keys_yaml: Path
    config: Path  # bastiond.yaml for bastionctl and bastiond
    state_dir: Path
    shared_key: Path  # the bastion's shared private key for the targets' account
    target_log: dict[str, Path] = field(default_factory=dict)
    veth_to: dict[str, str] = field(default_factory=dict)  # target address -> bastion-side veth

    def account(self, role: str) -> str:
        """The account name of a role (alice, bob, tgt, ...)."""
        return self.users[role].name

    def bastionctl(self, *args: str, timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
        """``bastionctl ARGS --config <lab config>`` run on the bastion (its namespace, a private /run)."""
        argv = self.on_bastion([sys.executable, "-m", "bastion_guard.cli.bastionctl", *args,
                                "--config", str(self.config)])
        return subprocess.run(argv[0], env=argv[1], capture_output=True, text=True, timeout=timeout, check=False)

    def on_bastion(self, command: Sequence[str]) -> tuple[list[str], dict[str, str]]:
        """argv and environment that run ``command`` as a process of the bastion host."""
        inner, env = realparts._privns(self.workdir, self.rsyslog, command)
        return ["ip", "netns", "exec", self.bastion, *inner], env

    def ssh_config(self, role: str) -> Path:
        """A client config whose ``bastion`` host logs in as ``role`` with that role's own key."""
        path = self.workdir / f"client-{role}.conf"
        user = self.users[role]
        path.write_text(
            f"Host bastion\n  HostName {BASTION}\n  User {user.name}\n  IdentityFile {user.key}\n"
            "Host *\n  IdentitiesOnly yes\n  BatchMode yes\n  StrictHostKeyChecking no\n"
            "  UserKnownHostsFile /dev/null\n  GlobalKnownHostsFile /dev/null\n  ConnectTimeout 5\n"
            "  LogLevel ERROR\n  PreferredAuthentications publickey\n"
        )
        return path

    def login_bastion(self, role: str) -> subprocess.CompletedProcess[str]:
        """``role`` logs in to the bastion with their own key from the client namespace."""
        argv = ["ip", "netns", "exec", self.client, "ssh", "-F", str(self.ssh_config(role)), "bastion", "true"]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)

    def jump(self, role: str, identity: Path, target: str) -> subprocess.CompletedProcess[str]:
        """``ssh -J bastion tgt@target`` from the client namespace: ``role`` on the jump, ``identity`` on the target."""
        argv = ["ip", "netns", "exec", self.client, "ssh", "-F", str(self.ssh_config(role)), "-i", str(identity),
                "-J", "bastion", "-l", self.account("tgt"), target, "true"]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)

    def target_keys(self, target: str) -> str:
        """The authorized_keys file that the target's sshd reads for the target account."""
        return (self.users["tgt"].home / TARGET_FILES[target]).read_text()


def fingerprint(key: Path) -> str:
    """``SHA256:...`` of a key file (private or public), by ssh-keygen."""
    done = subprocess.run(["ssh-keygen", "-l", "-f", str(key)], capture_output=True, text=True, check=True)
    return done.stdout.split()[1]


def public_blob(key: Path) -> str:
    """The base64 blob of a private key's public half."""
    done = subprocess.run(["ssh-keygen", "-y", "-f", str(key)], capture_output=True, text=True, check=True)
    return done.stdout.split()[1]


def make_keypair(path: Path, owner: str | None = None) -> Path:
    """An ed25519 pair at ``path`` (0600, owned by ``owner``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)],
                   check=True, capture_output=True)
    if owner is not None:
        shutil.chown(path, owner, owner)
    return path


def _sshd(workdir: Path, rs: realparts.Rsyslog, ns: str, name: str, lines: Sequence[str],
          log: Path | None) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    home = workdir / f"sshd-{name}"
    home.mkdir()
    hostkey = make_keypair(home / "ssh_host_ed25519_key")
    config = home / "sshd_config"
    config.write_text("\n".join([
        *lines, f"HostKey {hostkey}", f"PidFile {home / 'sshd.pid'}", "LogLevel VERBOSE", "SyslogFacility AUTH",
        "UsePAM no", "PasswordAuthentication no", "KbdInteractiveAuthentication no", "PubkeyAuthentication yes",
        "PermitRootLogin no", "UseDNS no", "PrintMotd no", "X11Forwarding no", "MaxStartups 100:30:200",
    ]) + "\n")
    return _running(workdir, rs, ns, config, log)


@contextlib.contextmanager
def _running(workdir: Path, rs: realparts.Rsyslog, ns: str, config: Path,
             log: Path | None) -> Iterator[subprocess.Popen[bytes]]:
    extra = ["-E", str(log)] if log is not None else []
    inner, env = realparts._privns(workdir, rs, [str(realparts.SSHD), "-t", "-f", str(config)])
    tested = subprocess.run(["ip", "netns", "exec", ns, *inner], env=env, capture_output=True, check=False)
    if tested.returncode != 0:
        raise RuntimeError(f"sshd -t rejected {config}: {tested.stderr.decode(errors='replace')}")
    inner, env = realparts._privns(workdir, rs, [str(realparts.SSHD), "-D", "-f", str(config), *extra])
    err = (config.parent / "stderr").open("wb")
    proc = subprocess.Popen(["ip", "netns", "exec", ns, *inner], env=env, stdin=subprocess.DEVNULL,
                            stdout=err, stderr=err)
    try:
        ready = netns.wait_until(lambda: proc.poll() is not None or _listening(ns), 20)
        if not ready or proc.poll() is not None:
            raise RuntimeError(f"sshd {config} did not start: {(config.parent / 'stderr').read_text(errors='replace')}")
        yield proc
    finally:
        realparts.stop_process(proc)
        err.close()


def _listening(ns: str) -> bool:
    done = netns.run("ip", "netns", "exec", ns, "ss", "-Hltn", "sport = :22", check=False)
    return bool(done.stdout.strip())


def keys_yaml(lab: Lab, people: Sequence[str], *, departs: dict[str, str] | None = None,
              targets: Sequence[str] = (), shared: Sequence[str] = (), rotate_every: str | None = None) -> str:
    """The inventory: ``people`` (roles) with their accounts, both targets, the shared key of alice and bob,
    plus ``targets`` and ``shared`` (flow mappings) and departure times by role."""
    lines = [f"krl: {lab.krl}", f"sshd_config: {lab.workdir / 'sshd-bastion' / 'sshd_config'}", "people:"]
    for role in people:
        when = f", departs: '{departs[role]}'" if departs and role in departs else ""
        lines.append(f"  - {{name: {role}, account: {lab.account(role)}{when}}}")
    lines += [
        "targets:",
        f"  - {{name: t1, hosts: [{T1}], account: {lab.account('tgt')}, authorized_keys: {TARGET_FILES[T1]}}}",
        f"  - {{name: t2, hosts: [{T2}], account: {lab.account('tgt')}, authorized_keys: {TARGET_FILES[T2]}}}",
        *(f"  - {target}" for target in targets),
        "shared_keys:",
        f"  - {{name: ai-user, private_key: {lab.shared_key}, owner: {lab.account('bob')}, targets: [t1, t2],"
        f" users: [alice, bob]{f', rotate_every: {rotate_every}' if rotate_every else ''}}}",
        *(f"  - {key}" for key in shared),
    ]
    return "\n".join(lines) + "\n"


ROLES = ("alice", "bob", "tgt", "erin", "gina", "carol", "dave")


@contextlib.contextmanager
def running_lab() -> Iterator[Lab]:
    """Everything up; everything stopped, deleted and removed afterwards (also after a failure)."""
    reason = netns.missing(("ss", "ssh-keygen")) or realparts.missing_requirements()
    if reason:
        raise netns.UnavailableError(reason)
    workdir = realparts.make_workdir()
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, True)
        rs = stack.enter_context(realparts.running_rsyslog(workdir))
        tag = secrets.token_hex(2)
        users = {role: stack.enter_context(realparts.temp_user(workdir, f"bgk{role[0]}{tag}{secrets.token_hex(2)}"))
                 for role in ROLES}
        bastion = stack.enter_context(netns.netns("bgk-bas"))
        client = stack.enter_context(netns.netns("bgk-cli"))
        t1 = stack.enter_context(netns.netns("bgk-t1"))
        t2 = stack.enter_context(netns.netns("bgk-t2"))
        client_tag, target_tag = netns.token(), netns.token()
        netns.bridge(bastion, f"{BASTION}/24", {client: f"{CLIENT}/24"}, client_tag)
        netns.bridge(bastion, "10.233.1.1/24", {t1: f"{T1}/24", t2: f"{T2}/24"}, target_tag)
        krl = workdir / "krl" / "revoked.krl"
        krl.parent.mkdir()
        subprocess.run(["ssh-keygen", "-k", "-f", str(krl)], check=True, capture_output=True)
        tgt = users["tgt"]
        shared_dir = workdir / "bastion-keys"
        shared_dir.mkdir(mode=0o755)
        shared = make_keypair(shared_dir / "ai-user", owner=users["bob"].name)
        for target_file in TARGET_FILES.values():
            path = tgt.home / target_file
            path.write_text(Path(f"{shared}.pub").read_text())
            path.chmod(0o600)
            shutil.chown(path, tgt.name, tgt.name)
        accounts = " ".join(users[role].name for role in ROLES if role != "tgt")
        stack.enter_context(_sshd(workdir, rs, bastion, "bastion", [
            "Port 22", f"ListenAddress {BASTION}", "AddressFamily inet", f"RevokedKeys {krl}",
            "AllowTcpForwarding yes", "AuthorizedKeysFile .ssh/authorized_keys", f"AllowUsers {accounts}",
        ], None))
        logs = {}
        for address, ns in ((T1, t1), (T2, t2)):
            logs[address] = workdir / f"target-{address}.log"
            stack.enter_context(_sshd(workdir, rs, ns, f"target-{address}", [
                "Port 22", f"ListenAddress {address}", "AddressFamily inet", f"AllowUsers {tgt.name}",
                f"AuthorizedKeysFile {TARGET_FILES[address]}", "AllowTcpForwarding no",
            ], logs[address]))
        state_dir = workdir / "state"
        config = workdir / "bastiond.yaml"
        lab = Lab(workdir, rs, bastion, client, {T1: t1, T2: t2}, users, krl, workdir / "keys.yaml", config,
                  state_dir, shared, logs, {T1: f"bgh{target_tag}0", T2: f"bgh{target_tag}1"})
        config.write_text(
            f"sources: [{{type: file, path: {rs.auth_log}}}]\nrules_dir: {netns.REPO / 'rules'}\n"
            f"state_dir: {state_dir}\nruntime_dir: {workdir / 'run'}\nfirewall: {{backend: dry-run}}\n"
            f"keys: {lab.keys_yaml}\nmetrics: {{port: 0}}\n"
        )
        lab.keys_yaml.write_text(keys_yaml(lab, ("alice", "bob", "erin", "gina")))
        yield lab


def uid_gid_mode(path: Path) -> tuple[str, int]:
    """Owner name and permission bits of ``path``."""
    status = path.stat()
    return pwd.getpwuid(status.st_uid).pw_name, status.st_mode & 0o777


def copy_private(source: Path, target: Path) -> Path:
    """A root-owned 0600 copy of a private key (to prove later that the old key is refused)."""
    shutil.copy(source, target)
    os.chown(target, 0, 0)
    target.chmod(0o600)
    return target
