"""``bastionctl audit`` against the real ``sshd -T -f FILE`` (root): good, warning and bad configs, and --fix applied.

Each config file lives in a temp dir with its own ed25519 host key (``sshd -T`` exits 255 without a readable
one) and KRL. ``sshd -T`` also insists on ``/run/sshd``; when the host has none (a container where
ssh.service never ran) it runs in a private mount namespace with an empty tmpfs ``/run``, so the host's
``/run`` is never touched. The audit runs as a subprocess, as an operator would run it.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bastion_guard.cli.bastionctl import build_parser

pytestmark = [pytest.mark.root, pytest.mark.sshd]

SSHD = Path("/usr/sbin/sshd")
REPO = Path(__file__).resolve().parents[2]

# sshd as $0, its arguments after: a private /run holding only an empty /run/sshd.
PRIVATE_RUN_SH = """#!/bin/sh
exec unshare -m --propagation private sh -c \\
  'mount -t tmpfs -o mode=755,size=64k bg-audit-run /run && mkdir -m 755 /run/sshd && exec "$0" "$@"' \\
  {sshd} "$@"
"""

# Until bastionctl.py registers `audit`, run it through the same add_parser/run pair on a bare root parser.
STANDALONE = (
    "import argparse, sys\n"
    "from bastion_guard.cli import audit_cmd\n"
    "parser = argparse.ArgumentParser(prog='bastionctl')\n"
    "audit_cmd.add_parser(parser.add_subparsers())\n"
    "args = parser.parse_args(sys.argv[1:])\n"
    "sys.exit(args.run(args))\n"
)

GOOD = {
    "PasswordAuthentication": "no",
    "KbdInteractiveAuthentication": "no",
    "PermitRootLogin": "no",
    "AuthenticationMethods": "publickey",
    "PubkeyAuthentication": "yes",
    "PermitEmptyPasswords": "no",
    "HostbasedAuthentication": "no",
    "PermitUserEnvironment": "no",
    "LogLevel": "VERBOSE",
    "MaxAuthTries": "3",
    "LoginGraceTime": "30",
    "MaxStartups": "10:30:60",
    "ClientAliveInterval": "300",
    "X11Forwarding": "no",
    "AllowAgentForwarding": "no",
    "AllowStreamLocalForwarding": "no",
    "PermitTunnel": "no",
    "GatewayPorts": "no",
    "AllowTcpForwarding": "local",
    "PermitOpen": "10.0.1.5:22 10.0.1.6:22",
    "AllowGroups": "ssh-users",
    "UseDNS": "no",
    "KexAlgorithms": "sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org,"
                     "diffie-hellman-group16-sha512,diffie-hellman-group18-sha512,diffie-hellman-group-exchange-sha256",
    "Ciphers": "chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes256-ctr,aes192-ctr,aes128-gcm@openssh.com,"
               "aes128-ctr",
    "MACs": "hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,umac-128-etm@openssh.com",
    "HostKeyAlgorithms": "ssh-ed25519-cert-v01@openssh.com,ssh-ed25519,rsa-sha2-512,rsa-sha2-256",
    "PubkeyAcceptedAlgorithms": "ssh-ed25519-cert-v01@openssh.com,ssh-ed25519,rsa-sha2-512,rsa-sha2-256",
}
# What a careless or CIS-by-rote bastion looks like: passwords, root, INFO logs, no ssh -J, a missing KRL.
# The explicit `AuthenticationMethods any` is on purpose: sshd refuses it after an earlier AuthenticationMethods
# line, so a drop-in that set one would stop sshd from starting (found by this test).
BAD = {
    "PasswordAuthentication": "yes",
    "AuthenticationMethods": "any",
    "PermitRootLogin": "yes",
    "LogLevel": "INFO",
    "AllowTcpForwarding": "no",
    "DisableForwarding": "yes",
    "PermitTunnel": "yes",
    "Ciphers": "aes256-ctr,aes128-cbc",
}
BAD_FAILS = {
    "password-authentication", "permit-root-login", "log-level", "tcp-forwarding", "disable-forwarding",
    "permit-tunnel", "revoked-keys",
}


@dataclass(frozen=True)
class Bench:
    """A temp dir with a host key and a KRL, and the sshd to give ``--sshd``."""

    root: Path
    hostkey: Path
    krl: Path
    sshd: Path

    def config(self, name: str, settings: dict[str, str], *, krl: Path | None = None, head: str = "") -> Path:
        """Write ``name`` with ``head`` first (e.g. an Include), the host key, the KRL and ``settings``."""
        body = [f"HostKey {self.hostkey}", f"RevokedKeys {krl or self.krl}"]
        body += [f"{keyword} {value}" for keyword, value in settings.items()]
        path = self.root / name
        path.write_text(head + "\n".join(body) + "\n")
        return path


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (sshd -T loads the host keys)"
    if not os.access(SSHD, os.X_OK):
        return f"{SSHD} missing (apt-get install openssh-server)"
    if shutil.which("ssh-keygen") is None:
        return "ssh-keygen missing (apt-get install openssh-client)"
    if not Path("/run/sshd").is_dir() and not (shutil.which("unshare") and shutil.which("mount")):
        return "/run/sshd missing and no unshare/mount to give sshd -T a private one"
    return None


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    """A host key, an empty KRL and (if the host lacks /run/sshd) a private-/run wrapper around sshd."""
    reason = _missing()
    if reason is not None:
        pytest.skip(f"real sshd -T tests: {reason}")
    root = tmp_path_factory.mktemp("audit")
    hostkey = root / "ssh_host_ed25519_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(hostkey)], check=True, timeout=30)
    krl = root / "revoked_keys.krl"
    subprocess.run(["ssh-keygen", "-q", "-k", "-f", str(krl)], check=True, timeout=30)
    sshd = SSHD
    if not Path("/run/sshd").is_dir():
        sshd = root / "sshd-private-run"
        sshd.write_text(PRIVATE_RUN_SH.format(sshd=SSHD))
        sshd.chmod(0o755)
    yield Bench(root, hostkey, krl, sshd)


def _audit_argv() -> list[str]:
    subparsers = [action for action in build_parser()._actions if isinstance(action, argparse._SubParsersAction)]
    if any("audit" in action.choices for action in subparsers):
        return [sys.executable, "-m", "bastion_guard.cli.bastionctl", "audit"]
    return [sys.executable, "-c", STANDALONE, "audit"]


def audit(bench: Bench, config: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    """Run ``bastionctl audit --sshd-config CONFIG -o json --no-self``; return exit code, JSON and stderr."""
    done = subprocess.run(
        [*_audit_argv(), "--sshd", str(bench.sshd), "--sshd-config", str(config), "-o", "json", "--no-self", *extra],
        capture_output=True, text=True, timeout=60, check=False, cwd=REPO,
    )
    return done.returncode, json.loads(done.stdout), done.stderr


def severities(document: dict[str, Any]) -> dict[str, str]:
    """Finding id -> severity."""
    return {item["id"]: item["severity"] for item in document["findings"]}


def test_good_profile_exits_0(bench: Bench) -> None:
    """The recommended bastion profile, as real sshd resolves it, passes every check."""
    code, document, stderr = audit(bench, bench.config("good.conf", GOOD))
    assert code == 0, (stderr, [item for item in document["findings"] if item["severity"] != "ok"])
    assert document["summary"]["fail"] == document["summary"]["warn"] == 0


def test_warnings_exit_1(bench: Bench) -> None:
    """Open PermitOpen, X11 forwarding and six tries are warnings, not failures: exit 1."""
    settings = {**GOOD, "X11Forwarding": "yes", "MaxAuthTries": "6"}
    del settings["PermitOpen"]
    code, document, _ = audit(bench, bench.config("warn.conf", settings))
    assert code == 1
    found = severities(document)
    assert {found["x11-forwarding"], found["max-auth-tries"], found["permit-open"]} == {"warn"}
    assert "fail" not in found.values()
    permit_open = next(item for item in document["findings"] if item["id"] == "permit-open")
    assert (permit_open["value"], permit_open["review"]) == ("any", True)


def test_bad_config_exits_2(bench: Bench) -> None:
    """Passwords, root, INFO logs, no forwarding, tunnels and a missing KRL fail, with exact fixes: exit 2."""
    missing = bench.root / "missing.krl"
    code, document, _ = audit(bench, bench.config("bad.conf", {**GOOD, **BAD}, krl=missing))
    assert code == 2
    found = severities(document)
    assert {check_id for check_id, severity in found.items() if severity == "fail"} == BAD_FAILS
    assert found["ciphers"] == found["authentication-methods"] == "warn"
    fixes = {item["id"]: item["fix"] for item in document["findings"]}
    assert fixes["tcp-forwarding"] == "AllowTcpForwarding local"
    assert fixes["disable-forwarding"] == "DisableForwarding no"
    assert fixes["ciphers"] == "Ciphers aes256-ctr"
    krl = next(item for item in document["findings"] if item["id"] == "revoked-keys")
    assert (krl["value"], krl["command"]) == (str(missing), f"ssh-keygen -k -f {missing}")


def test_fix_dropin_clears_every_failure(bench: Bench, tmp_path: Path) -> None:
    """Writing the --fix drop-in, Including it first and running its one command leaves no failure."""
    missing = tmp_path / "missing.krl"
    bad = bench.config("bad-to-fix.conf", {**GOOD, **BAD}, krl=missing)
    code, document, _ = audit(bench, bad, "--fix")
    assert code == 2
    dropin_dir = tmp_path / "sshd_config.d"
    dropin_dir.mkdir()
    (dropin_dir / "00-bastion-guard.conf").write_text(document["dropin"]["content"])
    commands = [item["command"] for item in document["findings"] if item["command"] and item["severity"] != "ok"]
    assert commands == [f"ssh-keygen -k -f {missing}"]  # the only step the drop-in cannot do; safe to run here
    for command in commands:
        subprocess.run(shlex.split(command), check=True, capture_output=True, timeout=30)
    fixed = bench.config("fixed.conf", {**GOOD, **BAD}, krl=missing, head=f"Include {dropin_dir}/*.conf\n")
    code, document, stderr = audit(bench, fixed)
    assert code in (0, 1), stderr
    found = severities(document)
    assert "fail" not in found.values()
    assert {found[check_id] for check_id in BAD_FAILS} == {"ok"}


def test_sshd_refusal_exits_2_with_its_message(bench: Bench) -> None:
    """A config sshd rejects gives exit 2, sshd's own complaint on stderr, and still valid JSON."""
    broken = bench.config("broken.conf", {**GOOD, "NoSuchKeyword": "yes"})
    code, document, stderr = audit(bench, broken)
    assert code == 2
    assert "Bad configuration option: NoSuchKeyword" in stderr
    assert document["findings"] == [] and "NoSuchKeyword" in document["error"]
