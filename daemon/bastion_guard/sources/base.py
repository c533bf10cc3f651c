"""What every log source hands to the daemon: batches of lines and the position to save after them.

The contract between a source and the daemon's checkpointing:

1. A :class:`Batch` carries complete lines in file order and :attr:`Batch.position`, the place just after
   its last line (or after its last skipped over-long line).
2. The daemon saves ``position`` only once the batch's effects are durable. A source created again from a
   saved position delivers exactly the lines after it: none lost, none repeated (rotation and the
   documented copytruncate and unknown-identity cases aside, see :mod:`bastion_guard.sources.file`).
3. ``read_available`` never blocks on the writer; ``wait`` is the only call that sleeps.
4. A source does not retry failures itself: it raises :class:`~bastion_guard.errors.SourceError` and the
   caller decides whether and when to call again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bastion_guard.reading import SourceLine


@dataclass(frozen=True, slots=True)
class FilePosition:
    """Where to resume in a log file: the file's identity and a byte offset at a line start.

    ``identity`` is the string made by :mod:`bastion_guard.sources.identity` (device, inode, digest of the
    first bytes); it finds the file again after it was renamed by rotation. Treat it as opaque.
    """

    identity: str
    offset: int


@dataclass(frozen=True, slots=True)
class Batch:
    """Complete lines read from one file, and the position just after the last of them.

    ``source`` names the followed path (the configured one, also for lines read from its rotated
    predecessor), so it can key the saved checkpoint. ``skipped_long`` counts lines dropped for being
    longer than the source's limit; they are inside the batch's range, so ``position`` is past them.
    """

    source: str
    lines: list[SourceLine]
    position: FilePosition
    skipped_long: int


class Follower(Protocol):
    """A source that yields new lines as they are written, read by one consumer (not thread-safe)."""

    def read_available(self, max_lines: int = 10_000) -> Batch | None:
        """The next complete lines that are already written, at most ``max_lines``; None if there are none."""
        ...

    def wait(self, timeout: float) -> None:
        """Sleep until the source may have changed or ``timeout`` seconds passed; may return early."""
        ...

    def close(self) -> None:
        """Release files and watches; idempotent."""
        ...
