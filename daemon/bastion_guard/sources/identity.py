"""Which file is this? Identities that let a saved position find its file again across rotation.

An identity is ``"{dev}:{ino}:{length}:{digest}"``: the device and inode number, and the first 16 hex digits
of the SHA-256 of the file's first ``length`` bytes, where ``length`` is ``min(size, PREFIX_BYTES)`` when the
identity was taken. The inode says *which file*; the prefix digest catches inode reuse (a deleted file's inode
given to a new log) and rewrites in place (copytruncate, then new lines).

Why the length is part of the identity: a file shorter than :data:`PREFIX_BYTES` grows, and a digest of
"whatever existed" would change with it. Recording the length lets anyone recheck the same bytes later: log
files are append-only, so the first ``length`` bytes of the same file never change. A follower upgrades the
identity (:func:`extend`) as the file grows, so positions saved later carry the full 256-byte prefix.
An identity taken of an empty file has length 0 and is only device and inode (inode reuse goes unseen
there, but a position in an empty file is offset 0, where any file may start).

Matching a saved identity (see :func:`find_rotated`):

1. **same file**: same device and inode, and the first ``length`` bytes still hash to the digest;
2. **same content**: another inode whose first ``length`` bytes hash to the digest, with ``length`` of at
   least :data:`MIN_CONTENT_BYTES`: a copy taken by ``copytruncate``. Only used when no file matches (1).

Rotated files are looked for only beside the followed file, as ``NAME.*`` or ``NAME-*`` (``auth.log.1``,
``auth.log.0``, ``auth.log-20261128``); compressed ones (``.gz`` and friends) cannot be read and are ignored,
as is logrotate's ``olddir``.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

PREFIX_BYTES = 256
# A syslog line's timestamp, host and program fill about 64 bytes, so two files that share their first
# 64 bytes are snapshots of one file; fewer bytes (an almost empty file) prove nothing.
MIN_CONTENT_BYTES = 64
_DIGEST_CHARS = 16
_COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".lzma", ".Z", ".zip")


@dataclass(frozen=True, slots=True)
class FileIdentity:
    """Device, inode and a digest of the first ``length`` bytes of a file."""

    dev: int
    ino: int
    length: int
    digest: str

    def __str__(self) -> str:
        return f"{self.dev}:{self.ino}:{self.length}:{self.digest}"

    @classmethod
    def parse(cls, text: str) -> FileIdentity | None:
        """The identity written by ``str()``, or None for anything else (an unknown saved identity)."""
        parts = text.split(":")
        if len(parts) != 4 or not all(part.isdigit() for part in parts[:3]):
            return None
        dev, ino, length = (int(part) for part in parts[:3])
        if length > PREFIX_BYTES or len(parts[3]) != _DIGEST_CHARS:
            return None
        return cls(dev, ino, length, parts[3])

    def same_inode(self, status: os.stat_result) -> bool:
        """Whether ``status`` is of the same device and inode (the content is not checked)."""
        return (status.st_dev, status.st_ino) == (self.dev, self.ino)

    def same_prefix(self, fd: int) -> bool:
        """Whether the open file's first ``length`` bytes hash to this digest (False if it is shorter)."""
        head = os.pread(fd, self.length, 0)
        return len(head) == self.length and _digest(head) == self.digest


def identify(fd: int) -> FileIdentity:
    """The identity of an open file, over its first ``min(size, PREFIX_BYTES)`` bytes."""
    status = os.fstat(fd)
    head = os.pread(fd, PREFIX_BYTES, 0)
    return FileIdentity(status.st_dev, status.st_ino, len(head), _digest(head))


def extend(identity: FileIdentity, fd: int) -> FileIdentity | None:
    """``identity`` over a longer prefix if the file grew, or None if its first bytes changed (rewritten)."""
    head = os.pread(fd, PREFIX_BYTES, 0)
    if len(head) < identity.length or _digest(head[: identity.length]) != identity.digest:
        return None
    if len(head) == identity.length:
        return identity
    return FileIdentity(identity.dev, identity.ino, len(head), _digest(head))


def rotated_siblings(path: Path) -> list[tuple[Path, os.stat_result]]:
    """Regular, uncompressed files named like rotated copies of ``path``, with their status.

    The directory is listed twice and the results merged by inode: ``readdir`` during logrotate's
    renames (``.1`` to ``.2``, ``.2`` to ``.3``, ...) may skip a file that moves from a name not yet
    listed to one already listed, and a skipped rotated file would be a lost file. Raises
    PermissionError when the directory cannot be listed; a missing directory or a file vanishing
    meanwhile is not an error.
    """
    found: dict[tuple[int, int], tuple[Path, os.stat_result]] = {}
    for _ in range(2):
        for candidate, status in _list_siblings(path):
            found[status.st_dev, status.st_ino] = (candidate, status)  # the later listing's name wins
    return list(found.values())


def find_rotated(path: Path, identity: FileIdentity, offset: int) -> tuple[Path, int] | None:
    """The rotated sibling of ``path`` holding ``identity``, and the offset to resume it at; or None.

    A file with the same inode and at least ``offset`` bytes wins, resumed at ``offset``. Otherwise a copy
    with the same first bytes (copytruncate), the longest if there are several (a later snapshot holds
    more). A copy can be shorter than ``offset``: lines written between logrotate's copy and truncate were
    read from the original. Then it is resumed at its end: nothing is left in it, but it still marks
    where the files rotated after it begin (see :func:`rotated_after`).
    """
    copies: list[tuple[int, Path]] = []
    for candidate, status in rotated_siblings(path):
        same_inode = identity.same_inode(status)
        if same_inode and status.st_size < offset:
            continue  # the saved file, truncated since: not a place to resume
        if not same_inode and identity.length < MIN_CONTENT_BYTES:
            continue
        if not _prefix_matches(candidate, identity):
            continue
        if same_inode:
            return candidate, offset
        copies.append((status.st_size, candidate))
    if not copies:
        return None
    size, copy = max(copies)
    return copy, min(offset, size)


def rotated_after(
    path: Path, finished: os.stat_result, identity: FileIdentity
) -> list[tuple[Path, os.stat_result]]:
    """Rotated siblings written to after the file ``finished`` (whose identity is ``identity``), oldest first.

    These are the files a single writer moved on to before ``path`` got its current file: their last
    change is no earlier than the finished file's. Excluded: the finished file itself, the file now at
    ``path``, and copies of the finished file's content (already read through it). Each comes with the
    status it was listed with, so a caller can check that it opened that very file.
    """
    try:
        current = path.stat()
    except FileNotFoundError:
        current = None
    later = []
    for candidate, status in rotated_siblings(path):
        if (status.st_dev, status.st_ino) == (finished.st_dev, finished.st_ino):
            continue
        if current is not None and (status.st_dev, status.st_ino) == (current.st_dev, current.st_ino):
            continue
        if status.st_mtime_ns < finished.st_mtime_ns:
            continue
        if identity.length >= MIN_CONTENT_BYTES and _prefix_matches(candidate, identity):
            continue
        later.append((status.st_mtime_ns, candidate.name, candidate, status))
    # Ties (two files last written in one clock tick) fall back to the name: rare, and then a guess.
    later.sort(key=lambda entry: (entry[0], entry[1]))
    return [(candidate, status) for _mtime, _name, candidate, status in later]


def _list_siblings(path: Path) -> list[tuple[Path, os.stat_result]]:
    found = []
    stem = path.name
    try:
        listing = os.scandir(path.parent)
    except FileNotFoundError:
        return []  # no directory, no rotated files
    with listing as entries:
        for entry in entries:
            name = entry.name
            if len(name) <= len(stem) or not name.startswith(stem) or name[len(stem)] not in ".-":
                continue
            if name.endswith(_COMPRESSED):
                continue
            try:
                status = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISREG(status.st_mode):
                found.append((Path(entry.path), status))
    return found


def _prefix_matches(candidate: Path, identity: FileIdentity) -> bool:
    try:
        fd = os.open(candidate, os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, PermissionError):
        return False
    try:
        return identity.same_prefix(fd)
    finally:
        os.close(fd)


def _digest(head: bytes) -> str:
    return hashlib.sha256(head).hexdigest()[:_DIGEST_CHARS]
