"""bastion-guard's own footprint: its nft table is there and its state is private.

These checks are tolerant by design: a missing tool, table, directory or permission becomes a warning,
never an exception, so ``bastionctl audit`` works on a host where bastiond was never started.
"""

from __future__ import annotations

import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from bastion_guard.actions.base import ActionError
from bastion_guard.actions.runner import Runner, ToolError
from bastion_guard.errors import BastionError
from bastion_guard.hardening.findings import Finding, Severity
from bastion_guard.runtime.config import DaemonConfig, default_config, load_config
from bastion_guard.state.files import DIRECTORY_MODE, FILE_MODE, SIDECARS

TABLE = "bastion_guard"
NFT_TIMEOUT_SECS = 10.0
_FIREWALL_REASON = "bastiond enforces bans through this table; without it decisions are made but nobody is blocked"
_STATE_REASON = ("the state holds bans with their evidence (addresses, user names) and the key-rotation ledger; "
                 "only bastiond should read it")


class ToolRunner(Protocol):
    """The part of :class:`~bastion_guard.actions.runner.Runner` the firewall check uses."""

    def require(self, tool: str, package: str) -> None:
        """Raise :class:`ActionError` unless ``tool`` is installed."""

    def run(self, argv: Sequence[str], stdin: str = "", what: str = "") -> str:
        """Run ``argv``; raise :class:`ActionError` when it cannot run or fails."""


def daemon_config() -> DaemonConfig:
    """bastiond's configuration (for state_dir, backend, netns), or the defaults if it cannot be read.

    A broken bastiond.yaml is ``bastionctl check-config``'s business; the audit still checks the defaults.
    """
    try:
        return load_config(None)
    except (BastionError, OSError, ValueError):
        return default_config()


def audit_self(config: DaemonConfig, runner: ToolRunner | None = None) -> list[Finding]:
    """The firewall table and state permission findings for ``config``."""
    if runner is None:
        try:
            runner = Runner(config.netns, timeout_secs=NFT_TIMEOUT_SECS)
        except ActionError as exc:  # an invalid netns name in bastiond.yaml
            runner = _Refusing(exc)
    return [firewall_finding(config.firewall, runner, config.netns), *state_findings(config.state_dir)]


class _Refusing:
    """A runner that cannot run anything, carrying the reason (so the check reports it as a warning)."""

    def __init__(self, error: ActionError) -> None:
        self.error = error

    def require(self, tool: str, package: str) -> None:
        raise self.error

    def run(self, argv: Sequence[str], stdin: str = "", what: str = "") -> str:
        raise self.error


def firewall_finding(backend: str, runner: ToolRunner, netns: str | None = None) -> Finding:
    """Whether ``table inet bastion_guard`` exists (only meaningful for the nftables backend)."""
    setting = f"nft table inet {TABLE}" + (f" (netns {netns})" if netns else "")

    def finding(severity: Severity, value: str | None, note: str, command: str | None = None) -> Finding:
        return Finding("self-nft-table", severity, setting, value, _FIREWALL_REASON, note, command=command)

    if backend == "dry-run":
        return finding(Severity.WARN, None, "firewall backend dry-run: bans are decided, never enforced")
    if backend != "nftables":
        return finding(Severity.OK, None, f"firewall backend {backend}: no nft table expected")
    try:
        runner.require("nft", "nftables")
    except ActionError as exc:
        install = "apt-get install nftables" if "'nft'" in str(exc) else None  # or iproute2, for a netns
        return finding(Severity.WARN, None, str(exc), install)
    try:
        runner.run(["nft", "list", "table", "inet", TABLE], what=f"nft list table inet {TABLE}")
    except ActionError as exc:
        # nft says ENOENT for a missing table; anything else (no permission, no netns) means we could not look.
        if isinstance(exc, ToolError) and "No such file or directory" in exc.stderr:
            return finding(Severity.WARN, "missing", "not found: bastiond creates it when it starts",
                           "systemctl restart bastiond")
        return finding(Severity.WARN, None, f"cannot check: {exc}")
    return finding(Severity.OK, "present", "")


def state_findings(state_dir: Path) -> list[Finding]:
    """The state directory must be 0700 and the database (with its SQLite sidecars) 0600, when present."""
    try:
        info = state_dir.stat()
    except FileNotFoundError:
        return [_state("self-state-dir", Severity.WARN, state_dir, "missing", "bastiond has not run here yet")]
    except OSError as exc:
        return [_state("self-state-dir", Severity.WARN, state_dir, None, f"cannot check: {exc.strerror or exc}")]
    if not stat.S_ISDIR(info.st_mode):
        return [_state("self-state-dir", Severity.WARN, state_dir, None, "exists but is not a directory")]
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        directory = _state("self-state-dir", Severity.WARN, state_dir, f"{mode:04o}",
                           f"group/other bits set (want {DIRECTORY_MODE:04o})",
                           command=f"chmod {DIRECTORY_MODE:04o} {state_dir}")
    else:
        directory = _state("self-state-dir", Severity.OK, state_dir, f"{mode:04o}", "")
    return [directory, _database_finding(state_dir / "state.db")]


def _database_finding(database: Path) -> Finding:
    """The database and its -wal/-shm/-journal files hold the same data, so each must be 0600."""
    files = [database, *(Path(f"{database}{suffix}") for suffix in SIDECARS)]
    try:
        present = [(path, stat.S_IMODE(path.stat().st_mode)) for path in files if path.exists()]
    except OSError as exc:
        return _state("self-state-db", Severity.WARN, database, None, f"cannot check: {exc.strerror or exc}")
    if not present:
        return _state("self-state-db", Severity.OK, database, "missing", "no database yet")
    value = f"{present[0][1]:04o}"
    loose = [(path, mode) for path, mode in present if mode & 0o077]
    if not loose:
        return _state("self-state-db", Severity.OK, database, value, "")
    listed = ", ".join(f"{path.name} {mode:04o}" for path, mode in loose)
    command = f"chmod {FILE_MODE:04o} " + " ".join(str(path) for path, _ in loose)
    return _state("self-state-db", Severity.WARN, database, value, f"readable beyond bastiond: {listed}",
                  command=command)


def _state(
    finding_id: str, severity: Severity, path: Path, value: str | None, note: str, *, command: str | None = None
) -> Finding:
    return Finding(finding_id, severity, str(path), value, _STATE_REASON, note, command=command)
