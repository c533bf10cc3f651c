"""The key ledger: every step of every rotation and offboarding, saved the moment it is done.

One JSON file (``<state_dir>/keys/ledger.json``, 0600, replaced atomically) so that a run that stopped at
target 7 of 10, for whatever reason (a target down, a crash, Ctrl-C), continues on the next run where it
stopped instead of starting over with yet another key. Whoever changes keys (``bastionctl rotate-keys``
or bastiond's scheduler) holds an exclusive ``flock`` on ``<state_dir>/keys/lock`` for the whole run, so
two runs never interleave. Readers (``--dry-run``, ``keys list``) read without the lock: a rename is
atomic, they see a whole file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bastion_guard.keys.errors import KeyLifecycleError
from bastion_guard.keys.files import Ownership, atomic_write, private_directory

_VERSION = 1
STEPS = ("added", "verified", "removed")


@dataclass
class Rotation:
    """One rotation of one shared key: from ``old`` to ``new`` (fingerprints), step times per endpoint."""

    key: str
    reason: str
    old: str
    new: str
    started: float
    old_key: str = ""  # the old public key line: removing it needs its blob after the old private key is gone
    steps: dict[str, dict[str, float]] = field(default_factory=dict)
    switched: float | None = None
    completed: float | None = None

    def done(self, endpoint: str, step: str) -> bool:
        """Whether ``step`` was done on ``endpoint`` in this run."""
        return step in self.steps.get(endpoint, {})


@dataclass
class Offboarding:
    """One person's offboarding: when it started and, once nothing failed, when it completed."""

    person: str
    started: float
    completed: float | None = None
    revoked: list[str] = field(default_factory=list)  # fingerprints
    attempts: int = 0
    last_error: str | None = None


class Ledger:
    """The ledger file; open with :func:`locked` to change it, or :func:`read` to look."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.rotations: dict[str, Rotation] = {
            name: Rotation(**entry) for name, entry in data.get("rotations", {}).items()
        }
        self.last_rotated: dict[str, float] = {k: float(v) for k, v in data.get("last_rotated", {}).items()}
        self.offboardings: dict[str, Offboarding] = {
            name: Offboarding(**entry) for name, entry in data.get("offboardings", {}).items()
        }

    def open_rotation(self, key: str) -> Rotation | None:
        """The unfinished rotation of ``key``, if one stopped half way."""
        run = self.rotations.get(key)
        return run if run is not None and run.completed is None else None

    def mark(self, rotation: Rotation, endpoint: str, step: str, now: float) -> None:
        """Record ``step`` done on ``endpoint`` and save at once."""
        rotation.steps.setdefault(endpoint, {})[step] = now
        self.save()

    def save(self) -> None:
        """Write the whole ledger atomically (0600, root)."""
        data = {
            "version": _VERSION,
            "rotations": {name: asdict(run) for name, run in self.rotations.items()},
            "last_rotated": self.last_rotated,
            "offboardings": {name: asdict(entry) for name, entry in self.offboardings.items()},
        }
        text = json.dumps(data, indent=1, sort_keys=True) + "\n"
        atomic_write(self.path, text.encode(), Ownership(0o600, os.geteuid(), os.getegid()))


def ledger_dir(state_dir: Path) -> Path:
    """``<state_dir>/keys``: ledger, lock and backups live here."""
    return state_dir / "keys"


def read(state_dir: Path) -> Ledger:
    """The ledger as it is on disk (an empty one if there is none yet); changes nothing."""
    path = ledger_dir(state_dir) / "ledger.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        data = {}
    except (OSError, ValueError) as error:
        raise KeyLifecycleError(f"cannot read the key ledger {path}: {error}") from error
    if not isinstance(data, dict) or data.get("version", _VERSION) != _VERSION:
        raise KeyLifecycleError(f"{path} is not a key ledger this version understands")
    try:
        return Ledger(path, data)
    except TypeError as error:
        raise KeyLifecycleError(f"the key ledger {path} is damaged: {error}") from error


@contextlib.contextmanager
def locked(state_dir: Path, *, wait: bool = True) -> Iterator[Ledger]:
    """Hold the ledger lock and yield the ledger; :class:`KeyLifecycleError` if busy and not ``wait``."""
    directory = private_directory(ledger_dir(state_dir))
    fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise KeyLifecycleError("another key rotation is running (bastionctl or bastiond); try later") from None
        yield read(state_dir)
    finally:
        os.close(fd)
