"""authorized_keys files on the bastion: read the keys in them, remove some keys, keep everything else.

Removal rewrites the file atomically with its mode and owner unchanged (StrictModes would otherwise
reject it) after a backup into the root-only state directory, and keeps every other line byte for byte:
comments, options, lines we cannot parse (sshd ignores those too, and they are not ours to judge).
A file that holds none of the keys is left untouched, so a second run changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bastion_guard.keys.errors import KeyFormatError, KeyLifecycleError
from bastion_guard.keys.files import Ownership, atomic_write, backup_copy
from bastion_guard.keys.pubkey import PublicKey, is_key_line, parse_key

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class KeyLine:
    """One line of an authorized_keys file (1-based ``number``) and the key on it, if it holds one."""

    number: int
    text: str
    key: PublicKey | None
    problem: str | None = None


def read_lines(path: Path) -> list[KeyLine]:
    """Every line of ``path``; a missing file has none. Unparsable key lines carry their ``problem``."""
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:
        return []
    except OSError as error:
        raise KeyLifecycleError(f"cannot read {path}: {error.strerror or error}") from error
    lines = []
    for number, line in enumerate(text.splitlines(), 1):
        if not is_key_line(line):
            lines.append(KeyLine(number, line, None))
            continue
        try:
            lines.append(KeyLine(number, line, parse_key(line)))
        except KeyFormatError as error:
            lines.append(KeyLine(number, line, None, str(error)))
    return lines


def keys_in(path: Path) -> list[PublicKey]:
    """The valid keys in ``path``, in file order; malformed lines are logged with file:line and skipped."""
    found = []
    for line in read_lines(path):
        if line.problem is not None:
            log.warning("%s:%d: not a valid key line, left as it is: %s", path, line.number, line.problem)
        if line.key is not None:
            found.append(line.key)
    return found


def remove_keys(path: Path, keys: Iterable[PublicKey], backups: Path, stamp: str) -> list[PublicKey]:
    """Remove every line holding one of ``keys`` from ``path``; return the keys removed (empty: untouched)."""
    blobs = {key.blob for key in keys}
    lines = read_lines(path)
    removed = [line.key for line in lines if line.key is not None and line.key.blob in blobs]
    if not removed:
        return []
    if path.is_symlink():
        # Root rewriting a file a departing user may have pointed anywhere: refuse. The KRL refuses the key anyway.
        raise KeyLifecycleError(f"{path} is a symbolic link: not rewritten; the KRL refuses the key, remove it by hand")
    kept = [line.text for line in lines if line.key is None or line.key.blob not in blobs]
    ownership = Ownership.of(path)
    backup = backup_copy(path, backups, stamp)
    atomic_write(path, "".join(f"{text}\n" for text in kept).encode("utf-8", "surrogateescape"), ownership)
    log.info("removed %d key(s) from %s (backup %s)", len(removed), path, backup)
    return removed
