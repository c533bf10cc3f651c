"""Running the OpenSSH tools: argv lists only, data on stdin, bounded in time, stderr kept short.

Nothing here builds a shell string. What a command said is kept for error messages, cut to its last
lines: ssh and ssh-keygen never print private key material, but a message need not carry a novel.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from bastion_guard.keys.errors import KeyLifecycleError

DEFAULT_TIMEOUT_SECS = 60.0
_TAIL_CHARS = 400


@dataclass(frozen=True, slots=True)
class Done:
    """A finished command."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def said(self) -> str:
        """The end of what it wrote on stderr (else stdout), on one line."""
        text = (self.stderr.strip() or self.stdout.strip()).replace("\n", "; ")
        return text[-_TAIL_CHARS:] or "(no output)"


def run(argv: Sequence[str], *, stdin: str = "", timeout: float = DEFAULT_TIMEOUT_SECS) -> Done:
    """Run ``argv``; :class:`KeyLifecycleError` only when it cannot be started or does not finish in time."""
    try:
        done = subprocess.run(
            list(argv), input=stdin, capture_output=True, text=True, errors="replace", timeout=timeout, check=False,
        )
    except FileNotFoundError:
        raise KeyLifecycleError(f"{argv[0]} not found (apt-get install openssh-client)") from None
    except subprocess.TimeoutExpired:
        raise KeyLifecycleError(f"{argv[0]} did not finish within {timeout:.0f} s") from None
    except OSError as error:
        raise KeyLifecycleError(f"cannot run {argv[0]}: {error.strerror or error}") from None
    return Done(done.returncode, done.stdout, done.stderr)


def checked(argv: Sequence[str], what: str, *, stdin: str = "", timeout: float = DEFAULT_TIMEOUT_SECS) -> Done:
    """Like :func:`run`, but a non-zero exit is a :class:`KeyLifecycleError` naming ``what`` failed."""
    done = run(argv, stdin=stdin, timeout=timeout)
    if done.returncode != 0:
        raise KeyLifecycleError(f"{what} failed ({argv[0]} exit {done.returncode}): {done.said}")
    return done
