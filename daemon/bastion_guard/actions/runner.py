"""Run a firewall tool as an argv list, with its data on stdin, optionally inside a network namespace.

No shell is ever involved and nothing derived from a log line is put on a command line: scripts and
element batches travel on stdin. A tool that is missing or fails becomes an :class:`ActionError`
naming the command and quoting the tool's own error output.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from collections.abc import Sequence

from bastion_guard.actions.base import ActionError

log = logging.getLogger(__name__)

# What `ip netns add` accepts and what cannot be mistaken for an option.
_NETNS_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}")
_STDERR_LIMIT = 2000  # characters of a tool's complaint worth keeping in an exception message
DEFAULT_TIMEOUT_SECS = 60.0


class ToolError(ActionError):
    """The tool ran and refused: its exit status and error output are kept for the caller to classify."""

    def __init__(self, message: str, returncode: int, stderr: str) -> None:
        super().__init__(message)
        self.returncode = returncode
        self.stderr = stderr


class Runner:
    """Runs ``tool args...`` (in namespace ``netns`` when given) and returns its standard output."""

    __slots__ = ("_checked", "netns", "timeout_secs")

    def __init__(self, netns: str | None = None, timeout_secs: float = DEFAULT_TIMEOUT_SECS) -> None:
        if netns is not None and not _NETNS_NAME.fullmatch(netns):
            raise ActionError(f"invalid network namespace name: {netns!r}")
        self.netns = netns
        self.timeout_secs = timeout_secs
        self._checked: set[str] = set()

    def require(self, tool: str, package: str) -> None:
        """Raise :class:`ActionError` unless ``tool`` (and ``ip``, for a namespace) is on PATH."""
        needed = [(tool, package)]
        if self.netns is not None:
            needed.append(("ip", "iproute2"))
        for name, pkg in needed:
            if name in self._checked:
                continue
            if shutil.which(name) is None:
                raise ActionError(f"{name!r} not found on PATH: install the {pkg} package")
            self._checked.add(name)

    def run(self, argv: Sequence[str], stdin: str = "", what: str = "") -> str:
        """Run ``argv`` with ``stdin``; return stdout, or raise :class:`ToolError` on a non-zero exit."""
        full = [*self._prefix(), *argv]
        described = what or " ".join(argv)
        log.debug("running %s (%d bytes on stdin)", " ".join(full), len(stdin))
        try:
            done = subprocess.run(
                full,
                input=stdin.encode("ascii"),
                capture_output=True,
                timeout=self.timeout_secs,
                check=False,
            )
        except FileNotFoundError as exc:
            raise ActionError(f"{described}: cannot run {exc.filename!r}: not found on PATH") from None
        except subprocess.TimeoutExpired:
            raise ActionError(f"{described}: no answer within {self.timeout_secs:.0f} s") from None
        except OSError as exc:
            raise ActionError(f"{described}: cannot run {full[0]!r}: {exc}") from None
        if done.returncode != 0:
            stderr = done.stderr.decode("utf-8", "replace").strip()
            where = f" in network namespace {self.netns!r}" if self.netns else ""
            raise ToolError(
                f"{described} failed{where} (exit status {done.returncode}): {stderr[:_STDERR_LIMIT]}",
                done.returncode,
                stderr,
            )
        return done.stdout.decode("utf-8", "replace")

    def _prefix(self) -> list[str]:
        return [] if self.netns is None else ["ip", "netns", "exec", self.netns]
