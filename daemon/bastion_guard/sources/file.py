"""Follow one log file through rotation, and resume exactly where a saved position left off.

:class:`FileFollower` reads complete lines with ``pread`` from a file it holds open, so a rename does not
disturb it. When it reaches the end of the file it looks at what the followed path names now:

- **the same file**: nothing new; wait.
- **another file** (rename rotation, or deleted and created again): the writer may still hold the old file
  open and append to it until it reopens (rsyslog before its HUP), so the old file is kept and read until
  a *later* file has data. A single writer writes to the new file only after its last write to the old
  one, so one more read of the old file then gets everything. The files rotated after the old one (when
  we were slower than two rotations) are read next, oldest first, then the file at the path, each from 0.
  A last line without a newline in a file we leave is delivered as it is: nothing can complete it any more.
- **no file** (deleted): the held file stays open and is read while it grows; a new file at the path is
  followed as above.

**Truncation** (copytruncate, or ``: > auth.log``) keeps the inode; it shows as a size below our read
offset or as changed first bytes (see :mod:`~bastion_guard.sources.identity`), checked after every read so
that new lines written past the old offset are not mistaken for old ones. Lines read in a call that sees
the truncation are dropped, and reading goes on in the copy logrotate made (``auth.log.1``, found by its
first bytes) from the saved offset, then in any copies made after it, then in the emptied file from 0.
If we had read past the copy's end (lines written between logrotate's copy and its truncate, read from
the original in time), the copy only marks where the later copies begin. Lines written in that window
and *not* read in time are in no file: they are lost for every reader, and the tests measure how many.
Without a readable copy (``compress`` without ``delaycompress``, a manual truncate) the file restarts at 0.

**Resuming** from a :class:`~bastion_guard.sources.base.FilePosition`: the file at the path if it is the
saved one and holds the offset; else the rotated sibling that is (finished from the offset, then the later
files and the file at the path from 0, as above). A position that matches no file (unknown format, or the
file is gone) restarts the file at the path from 0: no line is lost, but lines read before the position
was saved may be delivered again. Without a position, reading starts at 0, or with ``from_end`` after the
last complete line (a new file appearing later is always read from 0).

**Lines**: ``SourceLine.offset`` is the byte offset of the line in its file; ``SourceLine.number`` counts
lines (skipped ones included) from where this follower began reading that file, so it is the file's line
number when that was offset 0. A line longer than ``max_line_bytes`` (newline excluded) is never held in
memory: it is read past in chunks and counted in ``Batch.skipped_long``. A last line without its newline
is kept back until it is complete.

**Errors**: a path or directory that cannot be read (permission, I/O) raises
:class:`~bastion_guard.errors.SourceError` from the call that met it; every call meets it again while it
lasts, and the follower's position is unchanged, so the caller may retry later. A missing file is not an
error: ``read_available`` returns None until it exists.

**Waking up**: ``wait`` uses a watchdog inotify observer on the *directory* (a watch on the file would
follow the renamed inode and miss the new file). Without inotify (``use_inotify=False``, no inotify
instance left, or the directory missing at start) it polls ``stat`` every ``poll_interval`` seconds; with
inotify it still checks every few seconds, for events inotify cannot see (writes to a deleted file).

**Limits**: "later file" means a later modification time, which is right for one writer (syslog); two
writers rotating at different moments, rotated files in another directory (``olddir``) or compressed at
once are beyond what can be matched, and may cost or repeat lines. Not thread-safe: one consumer calls
``read_available`` and ``wait``.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from types import TracebackType

from watchdog.events import EVENT_TYPE_CLOSED_NO_WRITE, EVENT_TYPE_OPENED, FileSystemEvent, FileSystemEventHandler
from watchdog.observers.inotify import InotifyObserver

from bastion_guard.errors import SourceError
from bastion_guard.reading import SourceLine, decode
from bastion_guard.sources.base import Batch, FilePosition
from bastion_guard.sources.identity import FileIdentity, extend, find_rotated, identify, rotated_after

CHUNK_BYTES = 64 * 1024
# With inotify, how often wait() still compares stat results: a safety net, not the normal path.
_SAFETY_SECS = 2.0
# read_available moves to at most this many other files (rotated, copied) in one call before giving up
# until the next call; each move reads a file to its end, so this only bounds a pathological loop.
_MAX_MOVES = 8

_Signature = tuple[tuple[int, int, int, int] | None, int | None]


class FileFollower:
    """Follow ``path`` from ``start`` (or its start, or its end): see the module docstring for the rules."""

    def __init__(
        self,
        path: Path,
        start: FilePosition | None,
        *,
        from_end: bool = False,
        max_line_bytes: int = 64 * 1024,
        use_inotify: bool = True,
        poll_interval: float = 0.25,
    ) -> None:
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be at least 1")
        self._path = path
        self._start = start
        self._from_end = from_end
        self._max_line_bytes = max_line_bytes
        self._poll_interval = poll_interval
        self._reader: _LineReader | None = None
        self._begun = False
        self._closed = False
        self._seen: _Signature | None = None
        self._watch = _DirectoryWatch.start(path) if use_inotify else None

    @property
    def uses_inotify(self) -> bool:
        """Whether ``wait`` is woken by inotify (False: it polls)."""
        return self._watch is not None

    @property
    def position(self) -> FilePosition | None:
        """The position after the last line returned (or where reading starts); None before a file was opened."""
        if self._reader is None:
            return None
        return FilePosition(str(self._reader.identity), self._reader.offset)

    def read_available(self, max_lines: int = 10_000) -> Batch | None:
        """The next complete lines already written, at most ``max_lines``, from one file; None if none.

        Never blocks. Raises SourceError when the file or its directory cannot be read.
        """
        if self._closed:
            raise ValueError("read from a closed FileFollower")
        if max_lines < 1:
            raise ValueError("max_lines must be at least 1")
        # Taken before reading, so that wait() notices any change made after this point.
        self._seen = self._signature()
        try:
            return self._read(max_lines)
        except FileNotFoundError:
            return None  # a file vanished between two calls: the next call looks again
        except OSError as error:
            raise SourceError(f"cannot read {self._path}: {error.strerror or error}") from error

    def wait(self, timeout: float) -> None:
        """Block until the file or a rotated sibling may have changed, or ``timeout`` seconds passed.

        May return early (a stale inotify event); the caller just reads again.
        """
        if self._closed:
            raise ValueError("wait on a closed FileFollower")
        deadline = time.monotonic() + timeout
        while self._signature() == self._seen:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if self._watch is None:
                time.sleep(min(remaining, self._poll_interval))
            elif self._watch.changed.wait(min(remaining, _SAFETY_SECS)):
                self._watch.changed.clear()
                return

    def close(self) -> None:
        """Stop the directory watch and close the file; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._watch is not None:
            self._watch.stop()
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def __enter__(self) -> FileFollower:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def _read(self, max_lines: int) -> Batch | None:
        if self._reader is None:
            self._reader = self._open_first() if not self._begun else self._open(self._path, 0)
            self._begun = True
        for _ in range(_MAX_MOVES):
            reader = self._reader
            if reader is None:
                return None
            mark = reader.mark()
            lines, skipped, _ = reader.take(max_lines)
            if not reader.intact():
                # What this call read may be new text at old offsets: drop it, and leave the reader
                # where it was, so that a failure while recovering leaves nothing half done.
                reader.rewind(mark)
                self._recover_truncated(reader)
                continue
            if lines or skipped:
                return self._batch(reader, lines, skipped)
            successor = self._successor(reader)
            if successor is None:
                return None
            # The writer has moved on, so this read gets the old file's last lines.
            lines, skipped, at_end = reader.take(max_lines, final=True)
            if at_end:
                reader.close()
                self._reader = successor
            else:
                successor.close()
            if lines or skipped:
                return self._batch(reader, lines, skipped)
        return None

    def _batch(self, reader: _LineReader, lines: list[SourceLine], skipped: int) -> Batch:
        position = FilePosition(str(reader.identity), reader.offset)
        return Batch(str(self._path), lines, position, skipped)

    def _open_first(self) -> _LineReader | None:
        """The file and offset to begin with, from the saved position or ``from_end``."""
        if self._start is None:
            return self._open(self._path, None if self._from_end else 0)
        saved = FileIdentity.parse(self._start.identity)
        offset = self._start.offset
        if saved is not None:
            reader = self._open(self._path, offset, expect=saved)
            if reader is None:
                # Not at the path: rotated (or copied and truncated) while we were down.
                reader = self._open_rotated(saved, offset)
            if reader is not None:
                return reader
        return self._open(self._path, 0)

    def _open(self, path: Path, offset: int | None, *, expect: FileIdentity | None = None) -> _LineReader | None:
        """A reader of ``path`` at ``offset`` (None: after its last complete line), or None if it is not there.

        With ``expect``, only if the file has that identity's first bytes and at least ``offset`` bytes
        (and, when it is at the followed path, the same inode: a copy there would be a different file).
        """
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            status = os.fstat(fd)
            if expect is not None:
                inode_ok = path != self._path or expect.same_inode(status)
                fits = offset is None or status.st_size >= offset
                if not (inode_ok and fits and expect.same_prefix(fd)):
                    os.close(fd)
                    return None
            skipping = False
            if offset is None:
                offset, skipping = _after_last_line(fd, status.st_size, self._max_line_bytes)
            return _LineReader(fd, identify(fd), offset, self._max_line_bytes, skipping=skipping)
        except BaseException:
            os.close(fd)
            raise

    def _successor(self, reader: _LineReader) -> _LineReader | None:
        """The next file to read once ``reader``'s file is drained, or None to stay with it for now."""
        try:
            here = self._path.stat()
        except FileNotFoundError:
            here = None
        if here is not None and reader.identity.same_inode(here):
            return None
        status = os.fstat(reader.fd)
        later = rotated_after(self._path, status, reader.identity)
        if here is not None:
            later.append((self._path, here))
        # Stay until a later file has data: until then the writer may still append to ours.
        if not any(listed.st_size > 0 for _path, listed in later):
            return None
        path, listed = later[0]
        successor = self._open(path, 0)
        if successor is not None and not successor.identity.same_inode(listed):
            # Renamed between listing and opening (another rotation): look again on the next call.
            successor.close()
            return None
        return successor

    def _recover_truncated(self, reader: _LineReader) -> None:
        """Continue after ``reader``'s file was truncated: from logrotate's copy if there is one, else from 0."""
        replacement = self._open_rotated(reader.identity, reader.offset)
        if replacement is None:
            self._reader = reader.restart()
            return
        reader.close()
        self._reader = replacement

    def _open_rotated(self, identity: FileIdentity, offset: int) -> _LineReader | None:
        """A reader of the rotated sibling holding ``identity`` (see :func:`find_rotated`), or None."""
        for _ in range(_MAX_MOVES):
            found = find_rotated(self._path, identity, offset)
            if found is None:
                return None
            reader = self._open(found[0], found[1], expect=identity)
            if reader is not None:
                return reader
            # A concurrent rotation renamed it between listing and opening: look again.
        return None

    def _signature(self) -> _Signature:
        """What wait() compares: the path's inode, size and mtime, and the size of the file we hold."""
        try:
            status = self._path.stat()
            here = (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns)
        except OSError:
            here = None
        held = None
        if self._reader is not None:
            try:
                held = os.fstat(self._reader.fd).st_size
            except OSError:
                held = None
        return here, held


class _LineReader:
    """Complete lines of one open file from a byte offset; over-long lines are skipped unbuffered."""

    def __init__(self, fd: int, identity: FileIdentity, offset: int, max_line_bytes: int, *, skipping: bool) -> None:
        self.fd = fd
        self.identity = identity
        self.offset = offset  # start of the first line not yet returned: the position to save
        self._max = max_line_bytes
        self._buffer = b""  # bytes read from self.offset on (unused while skipping)
        self._start = 0  # index in _buffer of the byte at self.offset
        self._read_at = offset  # file offset of the next read
        self._skipping = skipping  # discarding the rest of an over-long line that began at self.offset
        self._number = 0

    def take(self, max_lines: int, *, final: bool = False) -> tuple[list[SourceLine], int, bool]:
        """Up to ``max_lines`` lines (returned or skipped), the skipped count, and whether the end was reached.

        With ``final`` the file is finished, so a last line without a newline counts as a line.
        """
        lines: list[SourceLine] = []
        skipped = 0
        while len(lines) + skipped < max_lines:
            if self._skipping:
                chunk = os.pread(self.fd, CHUNK_BYTES, self._read_at)
                newline = chunk.find(b"\n")
                if newline < 0 and chunk:
                    self._read_at += len(chunk)
                    continue
                if newline < 0 and not final:
                    return lines, skipped, True
                # The long line ends here (or with the finished file): count it, keep what follows.
                self._skipping = False
                self._number += 1
                skipped += 1
                end = self._read_at + (newline + 1 if newline >= 0 else 0)
                self.offset = end
                self._buffer, self._start = chunk[newline + 1 :] if newline >= 0 else b"", 0
                self._read_at = end + len(self._buffer)
                continue
            newline = self._buffer.find(b"\n", self._start)
            if newline < 0:
                if len(self._buffer) - self._start > self._max:
                    self._skipping = True
                    self._buffer, self._start = b"", 0
                    continue
                chunk = os.pread(self.fd, CHUNK_BYTES, self._read_at)
                if chunk:
                    self._buffer = self._buffer[self._start :] + chunk
                    self._start = 0
                    self._read_at += len(chunk)
                    continue
                if not final or self._start == len(self._buffer):
                    return lines, skipped, True
                newline = len(self._buffer)  # the finished file's unterminated last line
            self._number += 1
            length = newline - self._start
            if length > self._max:
                skipped += 1
            else:
                lines.append(SourceLine(self._number, self.offset, decode(self._buffer[self._start : newline])))
            self.offset += min(length + 1, len(self._buffer) - self._start)
            self._start = min(newline + 1, len(self._buffer))
        return lines, skipped, False

    def mark(self) -> tuple[int, int, bool]:
        """Where the next line starts, its number, and whether it is being skipped, for :meth:`rewind`."""
        return self.offset, self._number, self._skipping

    def rewind(self, mark: tuple[int, int, bool]) -> None:
        """Forget everything read after ``mark``, as if it had not been read.

        An over-long line there is read past again, and counted once, at its end.
        """
        self.offset, self._number, self._skipping = mark
        self._buffer, self._start = b"", 0
        self._read_at = self.offset

    def intact(self) -> bool:
        """Whether the file still holds what we read: not shorter, same first bytes (identity grows with it)."""
        if os.fstat(self.fd).st_size < self._read_at:
            return False
        grown = extend(self.identity, self.fd)
        if grown is None:
            return False
        self.identity = grown
        return True

    def restart(self) -> _LineReader:
        """A reader of the same open file from offset 0 (after a truncation), with its new identity."""
        return _LineReader(self.fd, identify(self.fd), 0, self._max, skipping=False)

    def close(self) -> None:
        """Close the file."""
        os.close(self.fd)


class _DirectoryWatch(FileSystemEventHandler):
    """An inotify watch on the followed file's directory that sets :attr:`changed` on any event about it."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.changed = threading.Event()
        self._name = name
        self._observer: InotifyObserver | None = None

    @classmethod
    def start(cls, path: Path) -> _DirectoryWatch | None:
        """A running watch on ``path.parent``, or None when inotify cannot be used (then we poll)."""
        watch = cls(path.name)
        try:
            observer = InotifyObserver()
        except OSError:
            return None  # no inotify instance left (max_user_instances) or no inotify at all
        try:
            observer.schedule(watch, str(path.parent), recursive=False)
            observer.start()
        except OSError:
            observer.stop()
            return None  # directory missing or no watch left
        watch._observer = observer
        return watch

    def on_any_event(self, event: FileSystemEvent) -> None:
        """Wake the follower for the file or a sibling named like it (``auth.log``, ``auth.log.1``)."""
        # Opens and read-only closes are our own reads (and other readers'): they change nothing.
        if event.event_type in (EVENT_TYPE_OPENED, EVENT_TYPE_CLOSED_NO_WRITE):
            return
        for changed in (event.src_path, event.dest_path):
            if changed and Path(os.fsdecode(changed)).name.startswith(self._name):
                self.changed.set()
                return

    def stop(self) -> None:
        """Stop the observer thread and release the inotify instance."""
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5.0)
            self._observer = None


def _after_last_line(fd: int, size: int, max_line_bytes: int) -> tuple[int, bool]:
    """Where reading "from the end" starts: after the last newline, and whether that line is already too long.

    Looks back at most ``max_line_bytes + 1`` bytes: a line without a newline that is longer is skipped.
    """
    span = min(size, max_line_bytes + 1)
    tail = os.pread(fd, span, size - span)
    newline = tail.rfind(b"\n")
    if newline >= 0:
        return size - span + newline + 1, False
    if span < max_line_bytes + 1:
        return 0, False  # the whole file is one unfinished line: deliver it once complete
    return size, True


