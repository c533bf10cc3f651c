"""Atomic file replacement that keeps (or sets) mode and owner: the only way key files are written.

A reader (sshd, ssh, another bastionctl) sees the old file or the new one, never half of one: the data
goes to a temporary file in the same directory, which gets its mode and owner *before* the data is
written, is fsynced, and is renamed over the target; then the directory is fsynced so the rename
survives a crash. A file that did not exist is created the same way.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bastion_guard.keys.errors import KeyLifecycleError
from bastion_guard.state.files import fsync_directory


@dataclass(frozen=True, slots=True)
class Ownership:
    """Mode and owner a file must have."""

    mode: int
    uid: int
    gid: int

    @classmethod
    def of(cls, path: Path) -> Ownership:
        """The mode and owner ``path`` has now."""
        status = path.stat()
        return cls(status.st_mode & 0o7777, status.st_uid, status.st_gid)


def atomic_write(path: Path, data: bytes, ownership: Ownership) -> None:
    """Replace ``path`` with ``data`` atomically, with exactly ``ownership``; :class:`KeyLifecycleError` if not."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        try:
            os.fchmod(fd, ownership.mode)
            if (ownership.uid, ownership.gid) != (os.geteuid(), os.getegid()):
                os.fchown(fd, ownership.uid, ownership.gid)
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        Path(temporary).replace(path)
        fsync_directory(path.parent)
    except OSError as error:
        with contextlib.suppress(OSError):
            Path(temporary).unlink()
        raise KeyLifecycleError(f"cannot write {path}: {error.strerror or error}") from error


def atomic_rename(source: Path, target: Path) -> None:
    """Move ``source`` over ``target`` in one step (same file system) and make it durable."""
    try:
        source.replace(target)
        fsync_directory(target.parent)
    except OSError as error:
        raise KeyLifecycleError(f"cannot move {source} to {target}: {error.strerror or error}") from error


def private_directory(path: Path) -> Path:
    """``path`` as a root-only (0700) directory, created if needed."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def backup_copy(source: Path, directory: Path, stamp: str) -> Path:
    """Copy ``source`` into the root-only ``directory`` (0600), named after its path and ``stamp``."""
    private_directory(directory)
    name = str(source).strip("/").replace("/", "_") + f".{stamp}"
    target = directory / name
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out, source.open("rb") as original:
            shutil.copyfileobj(original, out)
            out.flush()
            os.fsync(out.fileno())
    except OSError as error:
        raise KeyLifecycleError(f"cannot back up {source} to {target}: {error.strerror or error}") from error
    return target
