"""The effective sshd settings against the bastion baseline (conventions.md section 6.4), as a table of checks.

Each :class:`Check` is data: an id, the sshd_config keyword, the severity when it is not met, why it
matters and the line that meets it. Its ``judge`` looks at ``sshd -T`` output and answers ``True`` (ok),
``False`` (the check's severity, reason and fix) or a :class:`Verdict` when the answer depends on other
settings. The bastion-specific cases live there: ``ssh -J`` needs local TCP forwarding, so CIS's
``DisableForwarding yes`` and Lynis' ``AllowTcpForwarding no`` fail here, and ``PermitOpen`` narrows it.

Adding a check is adding a row to :data:`CHECKS`; :func:`audit_sshd` runs them all, in table order.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bastion_guard.hardening.algorithms import POLICIES, AlgorithmPolicy
from bastion_guard.hardening.findings import Finding, Severity
from bastion_guard.hardening.sshd_config import SshdConfig

FAIL, WARN, OK = Severity.FAIL, Severity.WARN, Severity.OK

# sshd's log levels, quietest first (``sshd -T`` prints QUIET as SILENT and DEBUG1 as DEBUG).
_LOG_LEVELS = ("QUIET", "SILENT", "FATAL", "ERROR", "INFO", "VERBOSE", "DEBUG", "DEBUG1", "DEBUG2", "DEBUG3")
_LOG_RANK = dict(zip(_LOG_LEVELS, (0, 0, 1, 2, 3, 4, 5, 5, 6, 7), strict=True))
_ROOT_KEY_ONLY = ("prohibit-password", "without-password", "forced-commands-only")
_MAX_STARTUPS_DEFAULT = "10:30:100"
EXAMPLE_KRL = "/etc/ssh/revoked_keys.krl"


@dataclass(frozen=True, slots=True)
class Verdict:
    """A judge's answer when yes/no is not enough: its own severity, what it saw, and a better fix."""

    severity: Severity
    note: str = ""
    fix: str | None = None  # replaces the check's fix line (e.g. the configured list minus weak names)
    review: bool | None = None  # replaces the check's review flag (None: keep it)
    command: str | None = None


Judge = Callable[[SshdConfig, str | None], bool | Verdict]
"""``judge(config, value)``: ``value`` is the check keyword's effective value (``None`` if not printed)."""


@dataclass(frozen=True, slots=True)
class Check:
    """One row of the baseline: what to look at, how bad a miss is, why, and the line that fixes it."""

    id: str
    keyword: str
    severity: Severity
    reason: str
    fix: str
    judge: Judge
    review: bool = False  # the fix needs a person first (example targets, group or path): drop-in comments it out
    command: str | None = None
    shows: tuple[str, ...] = ()  # further keywords whose values belong in the finding

    def run(self, config: SshdConfig) -> Finding:
        """Judge ``config`` and build the finding."""
        answer = self.judge(config, config.get(self.keyword))
        if isinstance(answer, bool):
            answer = Verdict(OK) if answer else Verdict(self.severity)
        if answer.severity is OK:
            return Finding(self.id, OK, self.keyword, self._value(config), self.reason, answer.note)
        return Finding(
            self.id, answer.severity, self.keyword, self._value(config), self.reason, answer.note,
            fix=answer.fix or self.fix,
            review=self.review if answer.review is None else answer.review,
            command=answer.command or self.command,
        )

    def _value(self, config: SshdConfig) -> str | None:
        if not self.shows:
            return " ".join(config.all(self.keyword)) or None
        # The check's own keyword is the finding's setting; the others are named beside their values.
        own = " ".join(config.all(self.keyword))
        others = [f"{keyword} {' '.join(config.all(keyword))}" for keyword in self.shows if config.has(keyword)]
        return "; ".join([own or "(unset)", *others]) if own or others else None


def audit_sshd(config: SshdConfig, checks: tuple[Check, ...] | None = None) -> list[Finding]:
    """Run every check (default :data:`CHECKS`) against ``config``, in table order."""
    return [check.run(config) for check in (CHECKS if checks is None else checks)]


# --- judges ---------------------------------------------------------------------------------------------


def _is(expected: str) -> Judge:
    return lambda _config, value: value == expected


def _number(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _at_most(limit: int, *, zero_is_unlimited: bool = False) -> Judge:
    def judge(_config: SshdConfig, value: str | None) -> bool | Verdict:
        number = _number(value)
        if number == 0 and zero_is_unlimited:
            return Verdict(WARN, "0 means no limit")
        return number is not None and number <= limit

    return judge


def _positive(_config: SshdConfig, value: str | None) -> bool:
    number = _number(value)
    return number is not None and number > 0


def _auth_chains(config: SshdConfig) -> list[list[str]] | None:
    """AuthenticationMethods as lists of method names (``keyboard-interactive:pam`` -> base name); None = any."""
    value = config.get("authenticationmethods")
    if value in (None, "any"):
        return None
    return [[method.partition(":")[0] for method in chain.split(",")] for chain in value.split()]


def _key_required(config: SshdConfig) -> bool:
    """Whether every AuthenticationMethods list includes publickey, so nothing logs in without a key."""
    chains = _auth_chains(config)
    return chains is not None and all("publickey" in chain for chain in chains)


def _password(config: SshdConfig, value: str | None) -> bool | Verdict:
    if value == "no":
        return True
    if _key_required(config):
        return Verdict(WARN, "only after a key (AuthenticationMethods), but one Match block or edit away from a "
                             "password login")
    return False


def _kbd_interactive(config: SshdConfig, value: str | None) -> bool | Verdict:
    if value == "no":
        return True
    if _key_required(config):
        # A key then keyboard-interactive (an OTP through PAM) is the usual bastion second factor.
        return Verdict(OK, "a second factor: AuthenticationMethods requires publickey in every list")
    return False


def _authentication_methods(config: SshdConfig, value: str | None) -> bool | Verdict:
    chains = _auth_chains(config)
    if chains is None:
        if config.get("passwordauthentication") == "no" and config.get("kbdinteractiveauthentication") == "no":
            return Verdict(OK, "unset (any): fine while password and keyboard-interactive are off")
        # No line needed: the password and keyboard-interactive fixes make "any" fine. And a drop-in setting
        # it would stop sshd from starting if sshd_config says `AuthenticationMethods any` explicitly
        # (OpenSSH 9.2: "any" must appear alone), which -T cannot tell from the default.
        return Verdict(WARN, "unset (any) while passwords are on: no key is required; the password fixes suffice. "
                             "sshd rejects an explicit `AuthenticationMethods any` after this line: delete it first",
                       review=True)
    keyless = [",".join(chain) for chain in chains if "publickey" not in chain]
    if keyless:
        return Verdict(FAIL, f"{' '.join(keyless)} logs in without a key")
    return True


def _root_login(_config: SshdConfig, value: str | None) -> bool | Verdict:
    if value == "no":
        return True
    if value in _ROOT_KEY_ONLY:
        return Verdict(WARN, f"{value}: root can still log in with a key")
    return False


def _log_level(_config: SshdConfig, value: str | None) -> bool | Verdict:
    rank = _LOG_RANK.get((value or "").upper())
    if rank is None or rank < _LOG_RANK["VERBOSE"]:
        return Verdict(FAIL, f"{value}: failed-key fingerprints and `Connection from` lines are not logged")
    if rank > _LOG_RANK["VERBOSE"]:
        return Verdict(WARN, f"{value}: debug logging may record private user data (sshd_config(5)) and floods "
                             "the log")
    return True


def _tcp_forwarding(_config: SshdConfig, value: str | None) -> bool | Verdict:
    if value == "local":
        return True
    if value in ("yes", "all"):
        return Verdict(OK, "remote forwarding (-R) is allowed too; `AllowTcpForwarding local` is all ssh -J needs")
    return Verdict(FAIL, f"{value}: the direct-tcpip channels of ssh -J are refused")


def _permit_open(_config: SshdConfig, value: str | None) -> bool | Verdict:
    if value == "any":
        return Verdict(WARN, "any: users can reach every host and port the bastion can; list your targets")
    if value == "none":
        return Verdict(FAIL, "none refuses every forward, so ssh -J fails; open it, then narrow it to the targets",
                       fix="PermitOpen any", review=False)
    return True


def _remote_forwarding(config: SshdConfig) -> bool:
    return config.get("disableforwarding") != "yes" and config.get("allowtcpforwarding") in ("yes", "all", "remote")


def _gateway_ports(config: SshdConfig, value: str | None) -> bool | Verdict:
    if value == "no":
        return True
    if _remote_forwarding(config):
        return Verdict(FAIL, f"{value} while remote forwarding is allowed: -R listeners face the network")
    return Verdict(WARN, f"{value}: no effect while remote forwarding is off, a trap once it is on")


def _user_environment(_config: SshdConfig, value: str | None) -> bool | Verdict:
    if value == "no":
        return True
    if value == "yes":
        return False
    return Verdict(WARN, f"limited to {value}; `no` is safer")


def _revoked_keys(_config: SshdConfig, value: str | None) -> bool | Verdict:
    # OpenSSH 9.2 prints "none" when unset; newer versions print nothing, or several files on one line.
    paths = [Path(text) for text in (value or "").split() if text != "none"]
    if not paths:
        return Verdict(WARN, "unset: create the KRL first (the command), then point sshd at it")
    for path in paths:
        create = f"ssh-keygen -k -f {path}"
        if not path.exists():
            return Verdict(FAIL, f"{path} does not exist: sshd refuses every public key",
                           fix=f"RevokedKeys {value}", review=False, command=create)
        if not path.is_file() or not os.access(path, os.R_OK):
            return Verdict(FAIL, f"{path} is not a readable file: sshd refuses every public key",
                           fix=f"RevokedKeys {value}", review=False, command=f"chmod 0644 {path}")
    return True


def _startup_throttle(config: SshdConfig, value: str | None) -> bool | Verdict:
    penalties = config.get("persourcepenalties")  # OpenSSH 9.8+ only; "no" when disabled
    if penalties not in (None, "no"):
        return Verdict(OK, "PerSourcePenalties is on (OpenSSH 9.8+)")
    per_source = config.get("persourcemaxstartups")
    if per_source not in (None, "none"):
        return Verdict(OK, f"PerSourceMaxStartups {per_source}")
    if value != _MAX_STARTUPS_DEFAULT:
        return True
    return Verdict(WARN, "the default: no per-source limit" + (", PerSourcePenalties off" if penalties else ""))


def _allow_lists(config: SshdConfig, _value: str | None) -> bool | Verdict:
    if config.has("allowusers") or config.has("allowgroups"):
        return True
    # The example group locks everyone out unless it exists and holds every bastion user.
    return Verdict(WARN, "neither is set; ssh-users is an example: the group must exist and hold every user")


def _port(config: SshdConfig, _value: str | None) -> Verdict:
    if "22" in config.all("port"):
        return Verdict(OK, "22 is fine; another port is no control but cuts scanner noise in the logs")
    return Verdict(OK, "a non-default port: less scanner noise (not a control); bastion-guard reads it from sshd -T")


def _no_weak(policy: AlgorithmPolicy) -> Judge:
    def judge(_config: SshdConfig, value: str | None) -> bool | Verdict:
        offered = [name for name in (value or "").split(",") if name]
        weak = policy.weak_in(offered)
        if not weak:
            return True
        kept = [name for name in offered if name not in weak]
        return Verdict(WARN, f"weak: {', '.join(weak)}", fix=f"{policy.keyword} {','.join(kept) or policy.fallback}")

    return judge


def _algorithm_check(policy: AlgorithmPolicy) -> Check:
    return Check(policy.check_id, policy.keyword, WARN, policy.reason, f"{policy.keyword} {policy.fallback}",
                 _no_weak(policy))


# --- the table ------------------------------------------------------------------------------------------

CHECKS: tuple[Check, ...] = (
    # Who can log in, and how.
    Check("password-authentication", "PasswordAuthentication", FAIL,
          "passwords can be guessed, sprayed and phished; a bastion should let in keys only",
          "PasswordAuthentication no", _password),
    Check("kbd-interactive-authentication", "KbdInteractiveAuthentication", FAIL,
          "keyboard-interactive (PAM) usually asks for the account password: password login by another name",
          "KbdInteractiveAuthentication no", _kbd_interactive),
    Check("permit-empty-passwords", "PermitEmptyPasswords", FAIL,
          "an account with an empty password would log in with nothing at all",
          "PermitEmptyPasswords no", _is("no")),
    Check("pubkey-authentication", "PubkeyAuthentication", FAIL,
          "keys (or certificates) are the login a bastion is built around",
          "PubkeyAuthentication yes", _is("yes")),
    Check("authentication-methods", "AuthenticationMethods", WARN,
          "publickey in every list makes a key mandatory whatever else is switched on",
          "AuthenticationMethods publickey", _authentication_methods),
    Check("hostbased-authentication", "HostbasedAuthentication", FAIL,
          "host-based trust lets another machine vouch for a user: one compromised host logs in as anyone",
          "HostbasedAuthentication no", _is("no")),
    Check("permit-root-login", "PermitRootLogin", FAIL,
          "root logins name no person and root is every scanner's first guess; log in as yourself, then sudo",
          "PermitRootLogin no", _root_login),
    Check("allow-users-groups", "AllowGroups", WARN,
          "an explicit list of who may log in keeps service and forgotten accounts off the bastion",
          "AllowGroups ssh-users", _allow_lists, review=True, shows=("AllowUsers",)),
    # What the logs say: bastion-guard attributes events to keys and addresses from these lines.
    Check("log-level", "LogLevel", FAIL,
          "VERBOSE logs each key fingerprint and the `Connection from` lines bastion-guard uses for attribution",
          "LogLevel VERBOSE", _log_level),
    Check("use-dns", "UseDNS", WARN,
          "with reverse lookups the names in the log come from DNS the attacker controls; bans need addresses",
          "UseDNS no", _is("no")),
    # Forwarding: ProxyJump needs local TCP forwarding and nothing else.
    Check("tcp-forwarding", "AllowTcpForwarding", FAIL,
          "ProxyJump (ssh -J) opens direct-tcpip channels, which need local TCP forwarding",
          "AllowTcpForwarding local", _tcp_forwarding),
    Check("permit-open", "PermitOpen", WARN,
          "limits where jumps may go; without it the bastion relays to anything on the internal network",
          "PermitOpen 10.0.1.5:22 10.0.1.6:22", _permit_open, review=True),
    Check("disable-forwarding", "DisableForwarding", FAIL,
          "DisableForwarding yes (CIS) overrides AllowTcpForwarding and refuses ssh -J: no more jump host",
          "DisableForwarding no", _is("no")),
    Check("agent-forwarding", "AllowAgentForwarding", WARN,
          "a forwarded agent lets root on the bastion use every key the user holds; ssh -J needs no agent",
          "AllowAgentForwarding no", _is("no")),
    Check("x11-forwarding", "X11Forwarding", WARN,
          "a bastion runs no X clients, and a forwarded display can be watched and typed into from here",
          "X11Forwarding no", _is("no")),
    Check("stream-local-forwarding", "AllowStreamLocalForwarding", WARN,
          "Unix-socket forwarding reaches sockets on the bastion itself (agents, container runtimes)",
          "AllowStreamLocalForwarding no", _is("no")),
    Check("permit-tunnel", "PermitTunnel", FAIL,
          "tun/tap tunnels (ssh -w) put the client on the internal network, past PermitOpen and its logging",
          "PermitTunnel no", _is("no")),
    Check("gateway-ports", "GatewayPorts", WARN,
          "lets remote forwards (-R) listen on the bastion's public addresses, exposing a laptop's services",
          "GatewayPorts no", _gateway_ports),
    Check("permit-user-environment", "PermitUserEnvironment", FAIL,
          "~/.ssh/environment can set LD_PRELOAD and friends for what sshd starts, sidestepping ForceCommand",
          "PermitUserEnvironment no", _user_environment),
    # Cryptography.
    *(_algorithm_check(policy) for policy in POLICIES),
    # Key revocation: the offboarding path writes this KRL.
    Check("revoked-keys", "RevokedKeys", WARN,
          "a KRL revokes a key at once (offboarding, a lost laptop); if the file is missing sshd refuses every key",
          f"RevokedKeys {EXAMPLE_KRL}", _revoked_keys, review=True,
          command=f"ssh-keygen -k -f {EXAMPLE_KRL}"),
    # Limits on unauthenticated and idle connections.
    Check("max-auth-tries", "MaxAuthTries", WARN,
          "fewer attempts per connection slows guessing; sshd logs failures from half the limit on",
          "MaxAuthTries 3", _at_most(3)),
    Check("login-grace-time", "LoginGraceTime", WARN,
          "an unauthenticated connection holds a MaxStartups slot until this runs out",
          "LoginGraceTime 30", _at_most(30, zero_is_unlimited=True)),
    Check("startup-throttling", "MaxStartups", WARN,
          "throttling unauthenticated connections blunts floods and DHEat; OpenSSH 9.8+ adds PerSourcePenalties",
          "MaxStartups 10:30:60", _startup_throttle, shows=("PerSourceMaxStartups", "PerSourcePenalties")),
    Check("client-alive-interval", "ClientAliveInterval", WARN,
          "without keepalives, sessions (and their tunnels) from vanished clients linger",
          "ClientAliveInterval 300", _positive),
    Check("port", "Port", OK,
          "bastion-guard learns the port from sshd -T, so any port works",
          "Port 22", _port),
)
