"""The state directory and database file: created private (0700 / 0600) whatever the umask."""

from __future__ import annotations

import os
from pathlib import Path

from bastion_guard.state.errors import StateError

DIRECTORY_MODE = 0o700
FILE_MODE = 0o600
SIDECARS = ("-wal", "-shm", "-journal")
"""Files SQLite keeps beside a database; they belong to it and move with it."""


def prepare_directory(directory: Path) -> None:
    """Create ``directory`` (0700) if missing, and check that SQLite can create its -wal and -shm in it."""
    try:
        directory.mkdir(mode=DIRECTORY_MODE, parents=True)
        # mkdir's mode passes through the umask; set it exactly.
        directory.chmod(DIRECTORY_MODE)
    except FileExistsError:
        if not directory.is_dir():
            raise StateError(f"state directory {directory} exists and is not a directory") from None
    except OSError as exc:
        raise StateError(f"cannot create state directory {directory}: {exc.strerror or exc}") from exc
    if not os.access(directory, os.W_OK | os.X_OK):
        read_only = os.statvfs(directory).f_flag & os.ST_RDONLY
        cause = "it is on a read-only file system" if read_only else "permission denied"
        raise StateError(f"state directory {directory} is not writable: {cause}")


def create_file(path: Path) -> None:
    """Create the database file 0600 before SQLite opens it, so it is never readable by others.

    SQLite gives the -wal and -shm files the mode of the database; an existing database or sidecar with
    a looser mode (an old install, a copied file) is tightened.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)
        finally:
            os.close(fd)
        for suffix in SIDECARS:
            sidecar = Path(f"{path}{suffix}")
            if sidecar.exists():
                sidecar.chmod(FILE_MODE)
        fsync_directory(path.parent)
    except OSError as exc:
        raise StateError(f"cannot create state database {path}: {exc.strerror or exc}") from exc


def fsync_directory(directory: Path) -> None:
    """Make renames and creations in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
