"""``bastionctl audit`` without root: every check on ``sshd -T`` text, exit codes, JSON, report and drop-in."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from bastion_guard.actions.base import ActionError
from bastion_guard.actions.runner import ToolError
from bastion_guard.cli import audit_cmd
from bastion_guard.hardening import CHECKS, Finding, Severity, audit_sshd, exit_code, parse_effective
from bastion_guard.hardening.report import DROPIN_PATH, as_json, render_dropin, render_human
from bastion_guard.hardening.self_audit import firewall_finding, state_findings
from bastion_guard.hardening.sshd_config import SshdConfig, sshd_argv

FAIL, WARN, OK = Severity.FAIL, Severity.WARN, Severity.OK

# What OpenSSH 9.2p1's `sshd -T` printed for the recommended bastion profile (conventions.md 6.4), cut to
# the keywords the audit reads; revokedkeys is filled in per test with a real file.
GOOD: dict[str, str | None] = {
    "port": "22",
    "logingracetime": "30",
    "maxauthtries": "3",
    "clientaliveinterval": "300",
    "permitrootlogin": "no",
    "hostbasedauthentication": "no",
    "pubkeyauthentication": "yes",
    "passwordauthentication": "no",
    "kbdinteractiveauthentication": "no",
    "x11forwarding": "no",
    "permitemptypasswords": "no",
    "gatewayports": "no",
    "usedns": "no",
    "allowtcpforwarding": "local",
    "allowagentforwarding": "no",
    "disableforwarding": "no",
    "allowstreamlocalforwarding": "no",
    "ciphers": "chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes256-ctr,aes192-ctr,aes128-gcm@openssh.com,"
               "aes128-ctr",
    "macs": "hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,umac-128-etm@openssh.com",
    "kexalgorithms": "sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org,"
                     "diffie-hellman-group16-sha512,diffie-hellman-group18-sha512,diffie-hellman-group-exchange-sha256",
    "casignaturealgorithms": "ssh-ed25519,ecdsa-sha2-nistp256,sk-ssh-ed25519@openssh.com,rsa-sha2-512,rsa-sha2-256",
    "hostkeyalgorithms": "ssh-ed25519-cert-v01@openssh.com,ssh-ed25519,rsa-sha2-512,rsa-sha2-256",
    "pubkeyacceptedalgorithms": "ssh-ed25519-cert-v01@openssh.com,ssh-ed25519,rsa-sha2-512,rsa-sha2-256",
    "loglevel": "VERBOSE",
    "allowgroups": "ssh-users",
    "authenticationmethods": "publickey",
    "maxstartups": "10:30:60",
    "persourcemaxstartups": "none",
    "permittunnel": "no",
    "permitopen": "10.0.1.5:22 10.0.1.6:22",
    "permitlisten": "any",
    "permituserenvironment": "no",
}
# The 9.2 defaults that matter, for "untouched sshd_config" cases.
DEFAULTS = {
    "maxstartups": "10:30:100",
    "permitopen": "any",
    "allowgroups": None,
    "macs": "umac-64-etm@openssh.com,umac-128-etm@openssh.com,hmac-sha2-256-etm@openssh.com,"
            "hmac-sha2-512-etm@openssh.com,hmac-sha1-etm@openssh.com,umac-64@openssh.com,umac-128@openssh.com,"
            "hmac-sha2-256,hmac-sha2-512,hmac-sha1",
}


@pytest.fixture
def krl(tmp_path: Path) -> Path:
    """A readable revoked-keys file (its content does not matter to the audit)."""
    path = tmp_path / "revoked_keys.krl"
    path.write_text("")
    return path


def dump(values: dict[str, str | None]) -> str:
    """``sshd -T`` text: one line per keyword, or per value for lists; ``None`` leaves the keyword out."""
    lines = []
    for keyword, value in values.items():
        if value is None:
            continue
        repeated = keyword in ("port", "allowusers", "allowgroups")
        lines += [f"{keyword} {part}" for part in value.split()] if repeated else [f"{keyword} {value}"]
    return "\n".join(lines) + "\n"


def effective(krl: Path, **overrides: str | None) -> SshdConfig:
    """The good profile with ``overrides`` (lower-case sshd -T keywords) applied."""
    return parse_effective(dump({**GOOD, "revokedkeys": str(krl), **overrides}))


def finding(config: SshdConfig, check_id: str) -> Finding:
    """The finding of one check."""
    (found,) = [item for item in audit_sshd(config) if item.id == check_id]
    return found


def test_parse_keeps_every_value_in_order() -> None:
    """Repeated keywords (port, allowusers) keep all values in order; the first is the effective one."""
    config = parse_effective("port 2222\nport 22\nallowusers alice\nallowusers bob@10.0.0.0/8\nbanner none\n")
    assert config.get("Port") == "2222"
    assert config.all("port") == ("2222", "22")
    assert config.all("allowusers") == ("alice", "bob@10.0.0.0/8")
    assert config.has("banner")
    assert not config.has("persourcepenalties")
    assert config.get("persourcepenalties") is None


def test_sshd_argv() -> None:
    """The effective configuration is read with ``sshd -T``, plus ``-f FILE`` when a file is given."""
    assert sshd_argv(Path("/usr/sbin/sshd")) == ["/usr/sbin/sshd", "-T"]
    assert sshd_argv(Path("/usr/sbin/sshd"), Path("/tmp/c")) == ["/usr/sbin/sshd", "-T", "-f", "/tmp/c"]


def test_good_profile_passes_every_check(krl: Path) -> None:
    """The recommended bastion profile gives only ok findings, exit 0, and no fix lines."""
    findings = audit_sshd(effective(krl))
    assert [(f.id, f.severity) for f in findings if f.severity is not OK] == []
    assert len(findings) == len(CHECKS)
    assert all(f.fix is None for f in findings)
    assert exit_code(findings) == 0


def test_checks_table_is_well_formed() -> None:
    """Check ids are unique and every check says why and how to fix, with a real keyword in its fix line."""
    ids = [check.id for check in CHECKS]
    assert len(ids) == len(set(ids))
    for check in CHECKS:
        assert check.reason and check.fix.split(" ", 1)[0] == check.keyword, check.id


# (check id, overrides, expected severity)
CASES: list[tuple[str, dict[str, str | None], Severity]] = [
    ("password-authentication", {"passwordauthentication": "yes", "authenticationmethods": "any"}, FAIL),
    ("password-authentication", {"passwordauthentication": "yes"}, WARN),  # AuthenticationMethods publickey
    ("kbd-interactive-authentication", {"kbdinteractiveauthentication": "yes", "authenticationmethods": "any"}, FAIL),
    ("kbd-interactive-authentication", {"kbdinteractiveauthentication": "yes",
                                        "authenticationmethods": "publickey,keyboard-interactive:pam"}, OK),
    ("permit-empty-passwords", {"permitemptypasswords": "yes"}, FAIL),
    ("pubkey-authentication", {"pubkeyauthentication": "no"}, FAIL),
    ("authentication-methods", {"authenticationmethods": "any"}, OK),  # password and kbd are off
    ("authentication-methods", {"authenticationmethods": "any", "passwordauthentication": "yes"}, WARN),
    ("authentication-methods", {"authenticationmethods": "publickey,password publickey"}, OK),
    ("authentication-methods", {"authenticationmethods": "publickey password"}, FAIL),
    ("hostbased-authentication", {"hostbasedauthentication": "yes"}, FAIL),
    ("permit-root-login", {"permitrootlogin": "yes"}, FAIL),
    ("permit-root-login", {"permitrootlogin": "without-password"}, WARN),
    ("permit-root-login", {"permitrootlogin": "forced-commands-only"}, WARN),
    ("allow-users-groups", {"allowgroups": None}, WARN),
    ("allow-users-groups", {"allowgroups": None, "allowusers": "alice bob"}, OK),
    ("log-level", {"loglevel": "INFO"}, FAIL),
    ("log-level", {"loglevel": "SILENT"}, FAIL),
    ("log-level", {"loglevel": "DEBUG3"}, WARN),
    ("use-dns", {"usedns": "yes"}, WARN),
    ("tcp-forwarding", {"allowtcpforwarding": "no"}, FAIL),
    ("tcp-forwarding", {"allowtcpforwarding": "remote"}, FAIL),
    ("tcp-forwarding", {"allowtcpforwarding": "yes"}, OK),  # with PermitOpen restricted
    ("permit-open", {"permitopen": "any"}, WARN),
    ("permit-open", {"permitopen": "any", "allowtcpforwarding": "yes"}, WARN),
    ("permit-open", {"permitopen": "none"}, FAIL),
    ("disable-forwarding", {"disableforwarding": "yes"}, FAIL),
    ("agent-forwarding", {"allowagentforwarding": "yes"}, WARN),
    ("x11-forwarding", {"x11forwarding": "yes"}, WARN),
    ("stream-local-forwarding", {"allowstreamlocalforwarding": "yes"}, WARN),
    ("permit-tunnel", {"permittunnel": "point-to-point"}, FAIL),
    ("gateway-ports", {"gatewayports": "yes"}, WARN),  # remote forwarding is off (local)
    ("gateway-ports", {"gatewayports": "clientspecified", "allowtcpforwarding": "yes"}, FAIL),
    ("permit-user-environment", {"permituserenvironment": "yes"}, FAIL),
    ("permit-user-environment", {"permituserenvironment": "LANG,LC_*"}, WARN),
    ("kex-algorithms", {"kexalgorithms": "curve25519-sha256,diffie-hellman-group14-sha1"}, WARN),
    ("kex-algorithms", {"kexalgorithms": "diffie-hellman-group1-sha1"}, WARN),
    ("ciphers", {"ciphers": "aes256-ctr,aes128-cbc"}, WARN),
    ("ciphers", {"ciphers": "aes256-ctr,arcfour256"}, WARN),
    ("macs", {"macs": DEFAULTS["macs"]}, WARN),
    ("macs", {"macs": "hmac-sha2-256-etm@openssh.com,hmac-md5"}, WARN),
    ("host-key-algorithms", {"hostkeyalgorithms": "ssh-ed25519,ssh-rsa"}, WARN),
    ("pubkey-accepted-algorithms", {"pubkeyacceptedalgorithms": "ssh-ed25519,ssh-rsa-cert-v01@openssh.com"}, WARN),
    ("ca-signature-algorithms", {"casignaturealgorithms": "ssh-ed25519,ssh-rsa"}, WARN),
    ("revoked-keys", {"revokedkeys": "none"}, WARN),  # OpenSSH 9.2 prints none when unset
    ("revoked-keys", {"revokedkeys": None}, WARN),  # newer OpenSSH prints nothing
    ("max-auth-tries", {"maxauthtries": "6"}, WARN),
    ("max-auth-tries", {"maxauthtries": "1"}, OK),
    ("login-grace-time", {"logingracetime": "120"}, WARN),
    ("login-grace-time", {"logingracetime": "0"}, WARN),  # no limit at all
    ("startup-throttling", {"maxstartups": "10:30:100"}, WARN),
    ("startup-throttling", {"maxstartups": "10:30:100", "persourcemaxstartups": "3"}, OK),
    ("startup-throttling", {"maxstartups": "10:30:100", "persourcepenalties": "crash:90.000000 authfail:5.000000"},
     OK),
    ("startup-throttling", {"maxstartups": "10:30:100", "persourcepenalties": "no"}, WARN),
    ("client-alive-interval", {"clientaliveinterval": "0"}, WARN),
    ("port", {"port": "2222"}, OK),
]


@pytest.mark.parametrize(("check_id", "overrides", "severity"), CASES,
                         ids=[f"{case[0]}-{'-'.join(str(v) for v in case[1].values())}" for case in CASES])
def test_check_severity(krl: Path, check_id: str, overrides: dict[str, str | None], severity: Severity) -> None:
    """Each check gives the expected severity for a bad (or borderline) value; non-ok findings carry a fix."""
    found = finding(effective(krl, **overrides), check_id)
    assert found.severity is severity, found
    assert (found.fix is not None) == (severity is not OK)


def test_weak_algorithms_fix_keeps_the_strong_ones(krl: Path) -> None:
    """The fix for weak algorithms is the configured list without them, in the same order."""
    macs = finding(effective(krl, macs=DEFAULTS["macs"]), "macs")
    assert macs.note == ("weak: umac-64-etm@openssh.com, hmac-sha1-etm@openssh.com, umac-64@openssh.com, "
                         "hmac-sha1")
    assert macs.fix == ("MACs umac-128-etm@openssh.com,hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,"
                        "umac-128@openssh.com,hmac-sha2-256,hmac-sha2-512")
    only_weak = finding(effective(krl, kexalgorithms="diffie-hellman-group1-sha1"), "kex-algorithms")
    assert only_weak.fix is not None and only_weak.fix.startswith("KexAlgorithms sntrup761x25519-sha512@openssh.com,")


def test_forwarding_fixes_keep_proxyjump_working(krl: Path) -> None:
    """Forwarding fixes open local forwarding only; PermitOpen none is opened to any, any gets an example list."""
    assert finding(effective(krl, allowtcpforwarding="no"), "tcp-forwarding").fix == "AllowTcpForwarding local"
    assert finding(effective(krl, disableforwarding="yes"), "disable-forwarding").fix == "DisableForwarding no"
    closed = finding(effective(krl, permitopen="none"), "permit-open")
    assert (closed.fix, closed.review) == ("PermitOpen any", False)
    wide = finding(effective(krl, permitopen="any"), "permit-open")
    assert (wide.fix, wide.review) == ("PermitOpen 10.0.1.5:22 10.0.1.6:22", True)


def test_revoked_keys_file_must_exist(krl: Path, tmp_path: Path) -> None:
    """A missing or non-file KRL fails (sshd would refuse every key); the fix is a command creating it."""
    missing = tmp_path / "gone.krl"
    found = finding(effective(krl, revokedkeys=str(missing)), "revoked-keys")
    assert (found.severity, found.command, found.review) == (FAIL, f"ssh-keygen -k -f {missing}", False)
    assert finding(effective(krl, revokedkeys=str(tmp_path)), "revoked-keys").severity is FAIL
    assert finding(effective(krl, revokedkeys=f"{krl} {missing}"), "revoked-keys").severity is FAIL
    unset = finding(effective(krl, revokedkeys="none"), "revoked-keys")
    assert (unset.review, unset.command) == (True, "ssh-keygen -k -f /etc/ssh/revoked_keys.krl")


def test_finding_values_show_related_settings(krl: Path) -> None:
    """A finding shows the effective value, with related keywords named beside it, or None when unset."""
    config = effective(krl, maxstartups="10:30:100", allowgroups=None, allowusers="alice")
    assert finding(config, "startup-throttling").value == "10:30:100; PerSourceMaxStartups none"
    assert finding(config, "allow-users-groups").value == "(unset); AllowUsers alice"
    assert finding(effective(krl, allowgroups=None), "allow-users-groups").value is None


def bad(setting: str, severity: Severity) -> Finding:
    """A finding with the given severity (for report tests)."""
    fix = None if severity is OK else f"{setting} no"
    return Finding(setting.lower(), severity, setting, "yes", f"{setting} matters", fix=fix)


@pytest.mark.parametrize(("severities", "code"), [
    ([], 0), ([OK, OK], 0), ([OK, WARN], 1), ([WARN, FAIL, OK], 2), ([FAIL], 2),
])
def test_exit_code(severities: Sequence[Severity], code: int) -> None:
    """0 when all is ok, 1 when the worst finding is a warning, 2 when any fails."""
    assert exit_code([bad(f"S{i}", severity) for i, severity in enumerate(severities)]) == code


def test_json_shape(krl: Path) -> None:
    """JSON is {"findings": [...], "summary": {fail, warn, ok}} with the same keys on every finding."""
    findings = audit_sshd(effective(krl, passwordauthentication="yes", authenticationmethods="any", x11forwarding="yes"))
    document = json.loads(json.dumps(as_json(findings)))
    assert list(document) == ["findings", "summary"]
    assert document["summary"] == {"fail": 1, "warn": 2, "ok": len(CHECKS) - 3}
    keys = ["id", "severity", "setting", "value", "reason", "note", "fix", "review", "command"]
    assert all(list(item) == keys for item in document["findings"])
    password = next(item for item in document["findings"] if item["id"] == "password-authentication")
    assert (password["severity"], password["value"], password["fix"]) == ("fail", "yes", "PasswordAuthentication no")
    assert as_json([]) == {"findings": [], "summary": {"fail": 0, "warn": 0, "ok": 0}}
    assert as_json(findings, "x\n")["dropin"] == {"path": DROPIN_PATH, "content": "x\n"}


def test_dropin_has_a_commented_fix_line_per_problem(krl: Path, tmp_path: Path) -> None:
    """The drop-in holds each non-ok fix once, under its own comment; examples and pre-steps stay commented out."""
    findings = audit_sshd(effective(
        krl, passwordauthentication="yes", authenticationmethods="any", permitopen="any", allowgroups=None,
        revokedkeys=str(tmp_path / "gone.krl"), macs=DEFAULTS["macs"], loglevel="INFO",
    ))
    text = render_dropin(findings, "sshd -T")
    lines = text.splitlines()
    assert lines[0] == f"# {DROPIN_PATH}"
    settings = [line for line in lines if line and not line.startswith("#")]
    assert settings == [
        "PasswordAuthentication no",
        "LogLevel VERBOSE",
        "MACs umac-128-etm@openssh.com,hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,"
        "umac-128@openssh.com,hmac-sha2-256,hmac-sha2-512",
    ]
    for setting in settings:  # sshd only knows whole-line comments: each setting has one just above it
        assert lines[lines.index(setting) - 1].startswith("# ")
    # Redundant once passwords are off, and fatal next to an explicit `AuthenticationMethods any`.
    assert "#AuthenticationMethods publickey" in lines
    assert "#PermitOpen 10.0.1.5:22 10.0.1.6:22" in lines
    assert "#AllowGroups ssh-users" in lines
    assert f"# first run: ssh-keygen -k -f {tmp_path / 'gone.krl'}" in lines
    assert f"#RevokedKeys {tmp_path / 'gone.krl'}" in lines
    assert "PubkeyAuthentication" not in text  # ok findings add nothing


def test_dropin_when_nothing_to_change(krl: Path) -> None:
    """A clean audit gives a drop-in with no settings at all."""
    text = render_dropin(audit_sshd(effective(krl)), "sshd -T")
    assert [line for line in text.splitlines() if line and not line.startswith("#")] == []
    assert "Nothing to change" in text


def test_human_report_groups_by_severity(krl: Path) -> None:
    """The human report lists FAIL, then WARN, then OK, with why and fix on the problems."""
    findings = audit_sshd(effective(krl, permitrootlogin="yes", x11forwarding="yes"))
    text = render_human(findings, "/usr/sbin/sshd -T")
    assert text.index("FAIL (1)") < text.index("WARN (1)") < text.index(f"OK ({len(CHECKS) - 2})")
    assert "fix:  PermitRootLogin no" in text
    assert "fix:  X11Forwarding no" in text
    assert "1 fail, 1 warn," in text


def test_state_permissions(tmp_path: Path) -> None:
    """The state dir must be 0700 and state.db with its sidecars 0600; a missing dir is a warning, not a crash."""
    state = tmp_path / "state"
    assert [(f.id, f.severity, f.value) for f in state_findings(state)] == [("self-state-dir", WARN, "missing")]
    state.mkdir(mode=0o700)
    state.chmod(0o700)
    assert [(f.id, f.severity) for f in state_findings(state)] == [("self-state-dir", OK), ("self-state-db", OK)]
    (state / "state.db").touch(mode=0o600)
    (state / "state.db").chmod(0o600)
    (state / "state.db-wal").touch()
    (state / "state.db-wal").chmod(0o644)
    state.chmod(0o755)
    directory, database = state_findings(state)
    assert (directory.severity, directory.value, directory.command) == (WARN, "0755", f"chmod 0700 {state}")
    assert (database.severity, database.value) == (WARN, "0600")
    assert database.command == f"chmod 0600 {state}/state.db-wal"


class FakeNft:
    """Failure injection for the nft table check: raises what the real runner raises."""

    def __init__(self, error: ActionError | None = None, missing: bool = False) -> None:
        self.error = error
        self.missing = missing

    def require(self, tool: str, package: str) -> None:
        """Say nft is not installed, when told to."""
        if self.missing:
            raise ActionError(f"{tool!r} not found on PATH: install the {package} package")

    def run(self, argv: Sequence[str], stdin: str = "", what: str = "") -> str:
        """Fail as told, else list an (empty) table."""
        if self.error is not None:
            raise self.error
        return "table inet bastion_guard {\n}\n"


def test_firewall_table_check_is_tolerant() -> None:
    """A present table is ok; a missing table, missing nft or refusal is a warning; dry-run warns, ipset is ok."""
    assert firewall_finding("nftables", FakeNft()).severity is OK
    enoent = ToolError("nft list table failed", 1, "Error: No such file or directory\nlist table inet bastion_guard")
    missing = firewall_finding("nftables", FakeNft(enoent))
    assert (missing.severity, missing.value, missing.command) == (WARN, "missing", "systemctl restart bastiond")
    no_nft = firewall_finding("nftables", FakeNft(missing=True))
    assert (no_nft.severity, no_nft.command) == (WARN, "apt-get install nftables")
    denied = firewall_finding("nftables", FakeNft(ToolError("nft failed", 1, "Operation not permitted")))
    assert denied.severity is WARN and denied.note.startswith("cannot check")
    assert firewall_finding("dry-run", FakeNft()).severity is WARN
    assert firewall_finding("ipset", FakeNft()).severity is OK


def run_audit(*argv: str) -> int:
    """Run ``bastionctl audit ARGS`` in-process through its own parser registration."""
    parser = argparse.ArgumentParser(prog="bastionctl")
    audit_cmd.add_parser(parser.add_subparsers())
    args = parser.parse_args(["audit", *argv])
    code: int = args.run(args)
    return code


def test_sshd_failure_exits_2_with_its_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """When sshd -T fails, audit exits 2, quotes sshd's stderr, and -o json still prints valid JSON."""
    broken = tmp_path / "sshd"
    broken.write_text("#!/bin/sh\necho '/etc/ssh/sshd_config line 3: Bad configuration option: Bogus' >&2\nexit 255\n")
    broken.chmod(0o755)
    assert run_audit("--sshd", str(broken), "--no-self") == 2
    assert "Bad configuration option: Bogus" in capsys.readouterr().err
    assert run_audit("--sshd", str(broken), "-o", "json") == 2
    document = json.loads(capsys.readouterr().out)
    assert document["findings"] == [] and "Bad configuration option" in document["error"]
    assert run_audit("--sshd", str(tmp_path / "nope")) == 2
    assert "not found" in capsys.readouterr().err
