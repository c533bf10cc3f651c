"""The effective sshd configuration, as ``sshd -T`` prints it after Include, defaults and aliases.

Reading sshd's own answer instead of parsing sshd_config ourselves means the audit sees exactly what the
server will do: first-value-wins across drop-ins, ``Include`` order, renamed keywords
(``ChallengeResponseAuthentication`` is printed as ``kbdinteractiveauthentication``), defaults and
algorithm lists with ``+``/``-``/``^`` already applied. Without ``-C``, ``Match`` blocks are not applied.

``sshd -T`` needs root (it loads the host keys: no readable ``HostKey`` means exit 255) and the privilege
separation directory ``/run/sshd``, which ``ssh.service`` creates.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bastion_guard.errors import BastionError

DEFAULT_SSHD = Path("/usr/sbin/sshd")
TIMEOUT_SECS = 30.0
_STDERR_LIMIT = 2000  # characters of sshd's complaint worth showing

# Known sshd -T failures and what to do about them; the first matching fragment adds its hint.
_HINTS = (
    ("Missing privilege separation directory", "ssh.service creates it; or `mkdir -m 0755 /run/sshd`"),
    ("no hostkeys available", "sshd -T loads the host keys: run as root, and check the HostKey lines"),
    ("Permission denied", "sshd -T must run as root"),
)


class SshdConfigError(BastionError):
    """``sshd -T`` could not be run or refused the configuration; the message quotes sshd."""


@dataclass(frozen=True, slots=True)
class SshdConfig:
    """``sshd -T`` output: lower-case keyword -> every value printed for it, in order.

    Most keywords appear once; ``port``, ``listenaddress``, ``hostkey``, ``allowusers``, ``allowgroups``,
    ``acceptenv`` and ``subsystem`` appear once per value.
    """

    values: Mapping[str, tuple[str, ...]]

    def get(self, keyword: str) -> str | None:
        """The first (effective) value of ``keyword``, or ``None`` when sshd printed none."""
        found = self.values.get(keyword.lower())
        return found[0] if found else None

    def all(self, keyword: str) -> tuple[str, ...]:
        """Every value printed for ``keyword`` (empty when absent)."""
        return self.values.get(keyword.lower(), ())

    def has(self, keyword: str) -> bool:
        """Whether this sshd knows (printed) ``keyword``; new keywords show the sshd version."""
        return keyword.lower() in self.values


def parse_effective(text: str) -> SshdConfig:
    """Parse ``sshd -T`` output (``keyword value...`` per line) into a :class:`SshdConfig`."""
    values: dict[str, list[str]] = {}
    for line in text.splitlines():
        keyword, _, value = line.strip().partition(" ")
        if keyword:
            values.setdefault(keyword.lower(), []).append(value.strip())
    return SshdConfig({keyword: tuple(found) for keyword, found in values.items()})


def default_sshd() -> Path:
    """``/usr/sbin/sshd``, else ``sshd`` on PATH, else ``/usr/sbin/sshd`` (to fail with a clear message)."""
    if DEFAULT_SSHD.exists():
        return DEFAULT_SSHD
    found = shutil.which("sshd")
    return Path(found) if found else DEFAULT_SSHD


def sshd_argv(sshd: Path, config_file: Path | None = None) -> list[str]:
    """The argv that prints the effective configuration (``sshd -T [-f FILE]``)."""
    argv = [str(sshd), "-T"]
    if config_file is not None:
        argv += ["-f", str(config_file)]
    return argv


def read_effective(sshd: Path, config_file: Path | None = None, timeout: float = TIMEOUT_SECS) -> SshdConfig:
    """Run ``sshd -T [-f FILE]``; raise :class:`SshdConfigError` with sshd's stderr when it fails."""
    argv = sshd_argv(sshd, config_file)
    command = " ".join(argv)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=timeout, check=False)
    except FileNotFoundError:
        raise SshdConfigError(f"{sshd} not found: install openssh-server, or give its path with --sshd") from None
    except subprocess.TimeoutExpired:
        raise SshdConfigError(f"{command}: no answer within {timeout:.0f} s") from None
    except OSError as exc:
        raise SshdConfigError(f"cannot run {command}: {exc.strerror or exc}") from None
    if done.returncode != 0:
        stderr = done.stderr.strip()[:_STDERR_LIMIT] or "(nothing on stderr)"
        hints = [hint for fragment, hint in _HINTS if fragment in stderr]
        suffix = f"\nhint: {hints[0]}" if hints else ""
        raise SshdConfigError(f"{command} failed (exit {done.returncode}):\n{stderr}{suffix}")
    config = parse_effective(done.stdout)
    if not config.has("permitrootlogin"):
        # An sshd that exits 0 without a configuration dump is not an sshd we can audit.
        raise SshdConfigError(f"{command} printed no configuration (is {sshd} OpenSSH's sshd?)")
    return config
