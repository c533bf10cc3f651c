"""Follow the systemd journal through ``journalctl -o json``, and resume exactly after a saved cursor.

:class:`JournalFollower` runs ``journalctl --follow --output=json`` as an argv list (never a shell) and reads
its stdout in a background thread. The journal's own cursor (``__CURSOR``) is the checkpoint.

**Which entries**: journalctl is given one ``_COMM=<program>`` match per watched program (it ORs matches on
the same field). ``_COMM`` is set by journald from ``/proc/PID/comm`` of the sender, so a local user's
``logger -t sshd 'Failed password ... from 6.6.6.6'`` (``SYSLOG_IDENTIFIER=sshd``, ``_COMM=logger``) never
leaves journalctl. ``_COMM`` is not proof of identity, though: any process can rename itself with
``prctl(PR_SET_NAME, "sshd")`` or run a file named ``sshd``. Every record therefore carries ``uid`` and
``exe`` (``_UID``, ``_EXE``: the sender's real uid and the binary it really runs, which a renamed process
cannot hide) so a policy can demand more: sshd's monitor logs as uid 0 from ``/usr/sbin/sshd``. journald reads
``_COMM`` from ``/proc`` when the message arrives, so a sender that exits at once may be logged without
it; such entries do not match and are not returned.

**Where to start**: from a :class:`JournalPosition`, at the entry after its cursor; without one at the
oldest entry, or with ``from_end`` at the first entry written after journalctl started. journalctl's own
``--after-cursor`` skips one entry blindly, so it loses the first new entry when the saved entry is gone
(vacuumed, or a foreign cursor); we pass ``--cursor`` and drop the first entry only if it *is* the saved
one. ``--no-tail`` is needed with every cursor: ``--follow`` otherwise shows only the last 10 entries.

**Contract** (as for every source): batches hold entries in journal order, and :attr:`JournalBatch.position`
is the cursor of the last entry consumed, skipped ones included; a follower created from it delivers
exactly the entries after it. ``read_available`` never blocks; ``wait`` is the only call that sleeps.
When journalctl exits (a bad cursor, a missing binary, a journal it cannot open), the entries it printed
are delivered first, then ``read_available`` raises :class:`JournalctlError` with journalctl's stderr;
the follower never restarts itself: the caller makes a new one from the last saved position.

**Back-pressure**: the reader thread blocks when the buffer between it and the consumer holds
:data:`BUFFER_BYTES`; journalctl then blocks on its full pipe. Nothing is dropped for being slow.

**Sizes**: an entry whose MESSAGE is over :data:`MAX_MESSAGE_BYTES` is counted and skipped (no sshd, PAM
or sudo line comes near); so is an entry whose JSON line is over :data:`MAX_LINE_BYTES`, which is never
held in memory whole.

Not thread-safe: one consumer calls ``read_available`` and ``wait``.
"""

from __future__ import annotations

import io
import json
import subprocess
import tempfile
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import IO

from bastion_guard.errors import SourceError
from bastion_guard.events import Event
from bastion_guard.parsing import LineParser, LineStatus

SOURCE = "journal"
DEFAULT_PROGRAMS = ("sshd", "sshd-session", "sshd-auth", "sudo", "su")
MAX_MESSAGE_BYTES = 64 * 1024
# One JSON entry. A 64 KiB MESSAGE is 256 KiB as a byte array and up to 384 KiB as \u00XX escapes.
MAX_LINE_BYTES = 1024 * 1024
BUFFER_BYTES = 8 * 1024 * 1024
# The kernel keeps 15 characters of a process name (TASK_COMM_LEN 16 with the NUL): a longer
# program name could never match _COMM, so it is refused rather than silently matching nothing.
COMM_MAX_CHARS = 15
# Only what a record needs; journalctl adds __CURSOR and the timestamps itself. Keeps lines short
# (no _CMDLINE, no _CAP_EFFECTIVE) and so the buffer and json.loads cheap.
OUTPUT_FIELDS = ("MESSAGE", "_COMM", "_EXE", "_PID", "_UID", "_HOSTNAME", "_SYSTEMD_UNIT", "SYSLOG_IDENTIFIER")
_STDERR_TAIL_BYTES = 4096
_EXIT_GRACE_SECS = 2.0


@dataclass(frozen=True, slots=True)
class JournalPosition:
    """Where to resume: the ``__CURSOR`` of the last journal entry consumed. Opaque; store it as it is."""

    cursor: str


@dataclass(frozen=True, slots=True)
class JournalRecord:
    """One journal entry, with its envelope from journald's fields rather than from the message text.

    ``program`` is ``_COMM`` and ``trusted`` is True when the entry has one (journald set it from
    ``/proc``); otherwise ``program`` is the sender-chosen ``SYSLOG_IDENTIFIER`` (or "") and ``trusted``
    is False, and :func:`journal_event` never parses it. ``epoch`` is ``__REALTIME_TIMESTAMP`` (when
    journald received the entry) in seconds. ``pid``, ``uid``, ``unit``, ``exe`` and ``host`` come from
    ``_PID``, ``_UID``, ``_SYSTEMD_UNIT``, ``_EXE`` and ``_HOSTNAME``; None when absent. ``message`` is
    ``MESSAGE`` decoded as UTF-8, invalid bytes kept visible as ``\\xNN``.
    """

    cursor: str
    epoch: float
    host: str | None
    program: str
    pid: int | None
    message: str
    unit: str | None
    uid: int | None
    trusted: bool
    exe: str | None = None


@dataclass(frozen=True, slots=True)
class JournalBatch:
    """Entries read in journal order, and the position to save once their effects are durable.

    ``position`` is past every entry consumed, including skipped ones (see :class:`JournalCounts`).
    """

    source: str
    records: list[JournalRecord]
    position: JournalPosition


@dataclass(slots=True)
class JournalCounts:
    """Entries a follower consumed but did not return, for metrics: nothing is dropped uncounted."""

    oversized: int = 0  # MESSAGE over MAX_MESSAGE_BYTES (or withheld as null), or JSON over MAX_LINE_BYTES
    malformed: int = 0  # a line that is not a JSON journal entry with a cursor and a timestamp


class JournalctlError(SourceError):
    """journalctl ended (or never started); ``stderr`` holds the end of what it said, ``returncode`` its status."""

    def __init__(self, message: str, *, returncode: int | None, stderr: str) -> None:
        super().__init__(f"{message}: {stderr}" if stderr else message)
        self.returncode = returncode
        self.stderr = stderr


# ------------------------------------------------------------------------------------------ entries


def parse_journal_line(text: str | bytes) -> JournalRecord | None:
    """The record in one line of ``journalctl -o json`` output; None for a line to skip.

    Skipped: a line that is not a JSON object with ``__CURSOR`` and ``__REALTIME_TIMESTAMP``, and an
    entry whose MESSAGE is over :data:`MAX_MESSAGE_BYTES` or null (journalctl's "too large to show").
    """
    return _decode(text)[0]


def journal_event(parser: LineParser, record: JournalRecord, position: int = 0) -> Event | LineStatus:
    """Parse ``record`` with ``parser``, taking the program from the trusted ``_COMM`` only.

    An untrusted record (no ``_COMM``) is never parsed: its program name is whatever the sender wrote.
    ``_COMM`` itself can be set by any process (``prctl(PR_SET_NAME, "sshd")``), so sshd records must
    also come from uid 0: every line that matters for bans is written by sshd's root listener or monitor
    (the unprivileged pre-auth child logs through the monitor). A post-login child logging as the user
    only writes session and disconnect lines, which are lost to us by this rule and nothing else.
    """
    if not record.trusted or (record.program in _ROOT_PROGRAMS and record.uid not in (0, None)):
        return LineStatus.OTHER_PROGRAM
    return parser.parse_record(
        record.program,
        record.message,
        epoch=record.epoch,
        host=record.host,
        pid=record.pid,
        source=SOURCE,
        position=position,
    )


_ROOT_PROGRAMS = frozenset({"sshd", "sshd-session", "sshd-auth"})


def _decode(text: str | bytes) -> tuple[JournalRecord | None, str | None]:
    """The record in ``text`` (None if skipped) and its cursor (None if the line is no usable entry)."""
    try:
        entry = json.loads(text)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError too
        return None, None
    if not isinstance(entry, dict):
        return None, None
    cursor = _text(entry.get("__CURSOR"))
    stamp = _number(entry.get("__REALTIME_TIMESTAMP"))
    if not cursor or stamp is None:
        return None, None
    message = _text(entry.get("MESSAGE", ""))
    if message is None or _too_long(message):
        return None, cursor
    comm = _text(entry.get("_COMM"))
    record = JournalRecord(
        cursor=cursor,
        epoch=stamp / 1_000_000,
        host=_text(entry.get("_HOSTNAME")) or None,
        program=comm or _text(entry.get("SYSLOG_IDENTIFIER")) or "",
        pid=_number(entry.get("_PID")),
        message=message,
        unit=_text(entry.get("_SYSTEMD_UNIT")) or None,
        uid=_number(entry.get("_UID")),
        trusted=bool(comm),
        exe=_text(entry.get("_EXE")) or None,
    )
    return record, cursor


def _text(value: object) -> str | None:
    """A field's value as text: journalctl writes a string, a byte array (not printable UTF-8), or null.

    A field the sender gave more than once is a list of such values; the first one counts.
    """
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        return None
    if value and isinstance(value[0], str | list):
        return _text(value[0])
    if not all(type(byte) is int for byte in value):
        return None
    try:
        return bytes(value).decode("utf-8", "backslashreplace")
    except ValueError:  # a number outside 0..255
        return None


def _number(value: object) -> int | None:
    """A decimal field (``_PID``, ``_UID``, timestamps) as an int; None when absent or not decimal."""
    text = _text(value)
    if text is None or not text.isascii() or not text.isdigit():
        return None
    return int(text)


def _too_long(message: str) -> bool:
    """Whether ``message`` is over MAX_MESSAGE_BYTES in UTF-8 (a character is at most 4 bytes)."""
    if len(message) > MAX_MESSAGE_BYTES:
        return True
    return len(message) * 4 > MAX_MESSAGE_BYTES and len(message.encode("utf-8", "surrogatepass")) > MAX_MESSAGE_BYTES


def journalctl_argv(
    start: JournalPosition | None,
    *,
    from_end: bool = False,
    journalctl: str = "journalctl",
    extra_args: Sequence[str] = (),
    programs: Sequence[str] = DEFAULT_PROGRAMS,
) -> list[str]:
    """The journalctl command line a :class:`JournalFollower` runs (see the module docstring for why)."""
    if isinstance(programs, str):  # a str is a Sequence[str] too: "sshd" would match _COMM=s, _COMM=h, ...
        raise TypeError("programs must be a sequence of program names, not one string")
    if not programs:
        raise ValueError("programs is empty: journalctl would return every entry of every program")
    for program in programs:
        if not program or len(program) > COMM_MAX_CHARS:
            raise ValueError(f"program name {program!r} can never match _COMM (1 to {COMM_MAX_CHARS} characters)")
    fields = ",".join(OUTPUT_FIELDS)
    argv = [journalctl, "--follow", "--output=json", "--all", "--no-pager", f"--output-fields={fields}"]
    if start is not None:
        argv += ["--no-tail", f"--cursor={start.cursor}"]
    elif from_end:
        argv.append("--lines=0")
    else:
        argv.append("--no-tail")
    argv += extra_args
    argv += [f"_COMM={program}" for program in programs]
    return argv


# ------------------------------------------------------------------------------------------ follower


class JournalFollower:
    """Follow journal entries of the watched programs (see the module docstring for the contract).

    ``start`` resumes after a saved position; without it reading begins at the oldest entry, or with
    ``from_end`` at the first new one. ``extra_args`` go to journalctl before the matches (for example
    ``--directory=PATH`` or ``--merge``). A journalctl that cannot be started is reported by
    ``read_available`` like one that exited, so the caller has a single failure path.
    """

    def __init__(
        self,
        start: JournalPosition | None,
        *,
        from_end: bool = False,
        journalctl: str = "journalctl",
        extra_args: Sequence[str] = (),
        programs: Sequence[str] = DEFAULT_PROGRAMS,
    ) -> None:
        self.argv = journalctl_argv(
            start, from_end=from_end, journalctl=journalctl, extra_args=extra_args, programs=programs
        )
        self.counts = JournalCounts()
        self._position = start
        self._resume_cursor = start.cursor if start is not None else None  # drop this entry if it comes first
        self._buffer = _LineBuffer(BUFFER_BYTES)
        self._failure: SourceError | None = None
        self._closed = False
        # A file, not a pipe: journalctl can never block on it, and no thread has to drain it. Closed by close().
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the follower
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        try:
            self._proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._stderr
            )
        except OSError as error:
            self._failure = JournalctlError(f"cannot run {journalctl}", returncode=None, stderr=str(error))
            self._buffer.end()
            return
        self._reader = threading.Thread(
            target=_pump, args=(self._proc.stdout, self._buffer), name="journalctl-reader", daemon=True
        )
        self._reader.start()

    @property
    def position(self) -> JournalPosition | None:
        """The position after the last entry consumed (or the start position); None before any."""
        return self._position

    def read_available(self, max_records: int = 10_000) -> JournalBatch | None:
        """The entries journalctl has printed, at most ``max_records`` lines' worth; None if none.

        Never blocks. Raises :class:`JournalctlError` once journalctl has ended and everything it
        printed was returned, and again on every later call.
        """
        if self._closed:
            raise ValueError("read from a closed JournalFollower")
        if max_records < 1:
            raise ValueError("max_records must be at least 1")
        if self._failure is not None:
            raise self._failure
        lines, finished = self._buffer.take(max_records)
        if finished:
            self._failure = self._exit_error()
            if not lines:
                raise self._failure
        return self._batch(lines)

    def _batch(self, lines: list[bytes | None]) -> JournalBatch | None:
        """Decode ``lines`` into a batch, counting what is skipped; None if no line had a cursor."""
        records: list[JournalRecord] = []
        advanced = False
        for line in lines:
            if line is None:
                self.counts.oversized += 1  # its cursor is lost with it; a restart skips it once more
                continue
            record, cursor = _decode(line)
            if cursor is None:
                self.counts.malformed += 1
                continue
            if self._resume_cursor is not None:  # only the first entry can be the saved one
                saved, self._resume_cursor = self._resume_cursor, None
                if cursor == saved:
                    continue  # --cursor starts *at* the saved entry, which was delivered before
            advanced = True
            self._position = JournalPosition(cursor)
            if record is None:
                self.counts.oversized += 1
            else:
                records.append(record)
        if not advanced or self._position is None:
            return None  # nothing, or only lines without a cursor: nothing to save
        return JournalBatch(SOURCE, records, self._position)

    def wait(self, timeout: float) -> None:
        """Block until journalctl printed something or ended, or ``timeout`` seconds passed."""
        if self._closed:
            raise ValueError("wait on a closed JournalFollower")
        self._buffer.wait(timeout)

    def close(self) -> None:
        """Stop journalctl (SIGTERM, then SIGKILL) and the reader thread; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._buffer.close()  # wakes a reader blocked on a full buffer
        if self._proc is not None:
            _stop(self._proc)
        if self._reader is not None:
            self._reader.join(_EXIT_GRACE_SECS)
        if self._proc is not None and self._proc.stdout is not None:
            self._proc.stdout.close()
        self._stderr.close()

    def __enter__(self) -> JournalFollower:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def _exit_error(self) -> SourceError:
        """The error for a journalctl whose output ended: its exit status and the end of its stderr."""
        if self._proc is None:  # never started: __init__ set _failure, so this is not reached
            return JournalctlError("journalctl never started", returncode=None, stderr="")
        try:
            returncode = self._proc.wait(_EXIT_GRACE_SECS)
        except subprocess.TimeoutExpired:  # stdout closed but still running: not something to wait for
            _stop(self._proc)
            returncode = self._proc.returncode
        size = self._stderr.seek(0, io.SEEK_END)
        self._stderr.seek(max(0, size - _STDERR_TAIL_BYTES))
        stderr = self._stderr.read().decode("utf-8", "backslashreplace").strip()
        return JournalctlError(f"journalctl exited with status {returncode}", returncode=returncode, stderr=stderr)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM ``proc``, SIGKILL it if it is still there after a grace period, and reap it."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(_EXIT_GRACE_SECS)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _pump(stream: IO[bytes] | None, buffer: _LineBuffer) -> None:
    """Move journalctl's stdout into ``buffer`` line by line until end of file (the reader thread).

    A line over MAX_LINE_BYTES is read past in pieces and queued as None, to be counted. A last line
    without its newline is an entry journalctl did not finish: it is dropped, and as its cursor was
    never saved, a restart reads it again.
    """
    try:
        while stream is not None:  # always a pipe (stdout=PIPE); None only to the type checker
            line = stream.readline(MAX_LINE_BYTES + 1)
            if not line.endswith(b"\n") and len(line) <= MAX_LINE_BYTES:
                return  # end of file, possibly after an unfinished entry
            item: bytes | None = line
            if len(line) > MAX_LINE_BYTES:
                item = None
                while line and not line.endswith(b"\n"):
                    line = stream.readline(MAX_LINE_BYTES + 1)
            if not buffer.put(item):
                return  # closed
    except (OSError, ValueError):  # the stream was closed under us by close()
        return
    finally:
        buffer.end()


class _LineBuffer:
    """A FIFO of lines bounded in bytes between the reader thread (``put``) and the consumer (``take``).

    ``put`` blocks while the buffer is full, which is the back-pressure: journalctl then blocks on its
    pipe. One line always fits into an empty buffer, so a long line cannot wedge the reader.
    """

    def __init__(self, max_bytes: int) -> None:
        self._lines: deque[bytes | None] = deque()
        self._bytes = 0
        self._max_bytes = max_bytes
        self._ended = False  # the reader saw the end of journalctl's output
        self._closed = False  # the consumer went away: the reader stops
        self._changed = threading.Condition()

    def put(self, line: bytes | None) -> bool:
        """Append ``line`` (None: an over-long line), waiting for room; False once the buffer is closed."""
        size = len(line) if line is not None else 0
        with self._changed:
            while self._lines and self._bytes + size > self._max_bytes and not self._closed:
                self._changed.wait()
            if self._closed:
                return False
            self._lines.append(line)
            self._bytes += size
            self._changed.notify_all()
            return True

    def take(self, limit: int) -> tuple[list[bytes | None], bool]:
        """Up to ``limit`` lines without waiting, and whether the output ended with nothing left after them."""
        with self._changed:
            count = min(limit, len(self._lines))
            lines = [self._lines.popleft() for _ in range(count)]
            if lines:
                self._bytes -= sum(len(line) for line in lines if line is not None)
                self._changed.notify_all()
            return lines, self._ended and not self._lines

    def wait(self, timeout: float) -> None:
        """Block until there is a line, the output ended or the buffer was closed, or ``timeout`` passed."""
        with self._changed:
            self._changed.wait_for(lambda: self._lines or self._ended or self._closed, timeout)

    def end(self) -> None:
        """Mark the end of journalctl's output."""
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def close(self) -> None:
        """Drop what is buffered and release a waiting reader for good."""
        with self._changed:
            self._closed = True
            self._lines.clear()
            self._bytes = 0
            self._changed.notify_all()
