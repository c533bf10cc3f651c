"""The durable outbound spool: records wait here, on disk, until every sink has dealt with them.

One SQLite file (``<state_dir>/spool.db``, WAL, 0600), separate from ``state.db``: the sink workers (in
their own process) read and delete here all the time, and none of that may ever hold the lock the ban path
commits under. Each process opens its own :class:`Spool`; SQLite's locking keeps them consistent.

Layout and guarantees:

- Every record has a place ``seq`` in one sequence (``sequence.next`` hands them out), in append order.
- ``batches`` holds the loop's parsed events, one row per loop batch covering the places ``first`` to
  ``last`` (the compact form of :mod:`~bastion_guard.shipping.event_batches`): an indexed row and a record
  built per event cost the loop more than parsing it did. Ids are computed by the workers when they read.
- ``records`` holds everything else (decisions, bans, key and audit steps: few), one row each with its id.
  :meth:`Spool.append` ignores an id that is already waiting, so replaying a batch after a crash adds
  nothing. A record re-queued for a single sink (a dead-letter replay) carries that sink in ``only_sink``
  and is invisible to the others.
- ``cursors`` holds, per sink, the highest ``seq`` it has finished: everything at or below was delivered,
  skipped or dead-lettered by that sink. A record (a batch: once its ``last``) is deleted once every sink's
  cursor has passed it. Deleting a delivered batch is one row, not one per event.

Events replayed after a crash: the loop spools a batch, then commits its source position; a crash in
between makes it parse those lines again. Without a per-event index, :meth:`Spool.append_batch` drops the
events of the last :data:`REPLAY_WINDOW` batches waiting at open (their source, position, time and line
match). Only batches spooled after the last committed position can come back, and the loop commits after
every batch, so that window covers them unless the state commits failed that many times in a row; even
then a line spooled twice is sent twice with the same id (Elasticsearch answers 409, GELF and webhook
receivers see the same ``_event_id`` / ``webhook-id``): a duplicate, never a gap.
- ``deadletters`` keeps what a sink rejected for good, with the reason and time, until an operator replays it.
- ``totals`` (kept by triggers, so ``bastionctl deadletter replay`` from another process stays counted)
  holds the spool's size for the bounds.

Bounds: when an append would exceed ``max_bytes`` or ``max_records`` the configured policy decides:
``drop_oldest`` (default: the newest events matter most during an attack) deletes the oldest records,
``drop_newest`` refuses the new ones. Either way the drops are counted per sink. The spool never blocks
its caller: the caller is the detection loop, and a stalled Elasticsearch must never delay a ban. Losing
shipped copies of old lines under a long outage is the lesser harm, and it is visible in the metrics.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from bastion_guard.errors import BastionError
from bastion_guard.events import Event
from bastion_guard.shipping.event_batches import ReplayKey, encode_events, replay_key, replay_keys
from bastion_guard.shipping.records import Record, RecordKind, event_record
from bastion_guard.shipping.spooled_batch import SpooledBatch
from bastion_guard.state.files import SIDECARS, create_file, prepare_directory

log = logging.getLogger("bastiond.shipping")

_BUSY_TIMEOUT_SECS = 10.0
_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, kind TEXT NOT NULL, epoch REAL NOT NULL,
    body TEXT NOT NULL, bytes INTEGER NOT NULL, added REAL NOT NULL, only_sink TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS records_id ON records (id) WHERE only_sink IS NULL;
CREATE UNIQUE INDEX IF NOT EXISTS records_id_sink ON records (id, only_sink) WHERE only_sink IS NOT NULL;
CREATE TABLE IF NOT EXISTS cursors (sink TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS deadletters (
    number INTEGER PRIMARY KEY AUTOINCREMENT, sink TEXT NOT NULL, id TEXT NOT NULL, kind TEXT NOT NULL,
    epoch REAL NOT NULL, body TEXT NOT NULL, reason TEXT NOT NULL, rejected REAL NOT NULL,
    UNIQUE (sink, id)
);
CREATE TABLE IF NOT EXISTS totals (one INTEGER PRIMARY KEY CHECK (one = 1), records INTEGER NOT NULL,
                                   bytes INTEGER NOT NULL);
INSERT OR IGNORE INTO totals VALUES (1, 0, 0);
CREATE TRIGGER IF NOT EXISTS records_added AFTER INSERT ON records BEGIN
    UPDATE totals SET records = records + 1, bytes = bytes + NEW.bytes;
END;
CREATE TRIGGER IF NOT EXISTS records_removed AFTER DELETE ON records BEGIN
    UPDATE totals SET records = records - 1, bytes = bytes - OLD.bytes;
END;
-- body last: SQLite walks a row's overflow pages to reach the columns after a long blob, and most queries
-- here read only the places and sizes.
CREATE TABLE IF NOT EXISTS batches (
    first INTEGER PRIMARY KEY, last INTEGER NOT NULL, bytes INTEGER NOT NULL, added REAL NOT NULL,
    body BLOB NOT NULL
);
CREATE TRIGGER IF NOT EXISTS batches_added AFTER INSERT ON batches BEGIN
    UPDATE totals SET records = records + NEW.last - NEW.first + 1, bytes = bytes + NEW.bytes;
END;
CREATE TRIGGER IF NOT EXISTS batches_removed AFTER DELETE ON batches BEGIN
    UPDATE totals SET records = records - (OLD.last - OLD.first + 1), bytes = bytes - OLD.bytes;
END;
CREATE TABLE IF NOT EXISTS sequence (one INTEGER PRIMARY KEY CHECK (one = 1), next INTEGER NOT NULL);
-- A spool written before batches existed numbered its records by AUTOINCREMENT: carry on after them.
INSERT OR IGNORE INTO sequence SELECT 1, 1 + MAX(
    COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'records'), 0),
    COALESCE((SELECT MAX(seq) FROM records), 0));
"""
_INSERT = ("INSERT OR IGNORE INTO records (seq, id, kind, epoch, body, bytes, added, only_sink) "
           "VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
_PENDING = "seq > ? AND (only_sink IS NULL OR only_sink = ?)"
# Records of the batches after a cursor: a batch the cursor is inside of counts only its unfinished part.
_BATCH_DEPTH = "COALESCE(SUM(last - MAX(first - 1, ?)), 0)"
_Row = tuple[str, str, float, bytes, int, float, str | None]  # id, kind, epoch, body, bytes, added, only_sink
REPLAY_WINDOW = 8  # batches at the end of the spool whose events a replay after a crash may repeat
_DECODED_BATCHES = 4  # decoded batches kept for the next read (a worker reads a long batch in slices)


class SpoolError(BastionError):
    """The spool file cannot be opened or written; the message names the file and the cause."""


class Policy(enum.StrEnum):
    """What to do when the spool is full."""

    DROP_OLDEST = "drop_oldest"
    DROP_NEWEST = "drop_newest"


@dataclass(frozen=True, slots=True)
class Bounds:
    """The spool's size limits (``0`` = no limit on that measure) and the policy when they are reached."""

    max_bytes: int = 256 * 1024 * 1024
    max_records: int = 0
    policy: Policy = Policy.DROP_OLDEST


class Queued:
    """A record as a sink's worker reads it: its place in the spool, and the record.

    A parsed line is read as event ``index`` of its spooled ``batch`` (or as an :class:`Event` and its
    bastion); its :attr:`event` is decoded, and its record (a body dict and an id, ~3 µs) built, the first
    time they are asked for. A sink that encodes batches itself (the Elasticsearch sink's
    ``deliver_queued``) asks for neither, except for the few it rejects (dead letters are records)."""

    __slots__ = ("_event", "_record", "bastion", "batch", "index", "seq")

    def __init__(self, seq: int, record: Record | None = None, *, event: Event | None = None,
                 bastion: str = "", batch: SpooledBatch | None = None, index: int = 0) -> None:
        """Exactly one of ``record``, ``event`` (with its ``bastion``) or ``batch`` (with the ``index``)."""
        if (record is not None) + (event is not None) + (batch is not None) != 1:
            raise ValueError("a queued item is a record, an event or a batch's event, exactly one of them")
        self.seq = seq
        self._event = event
        self.bastion = batch.bastion if batch is not None else bastion
        self.batch = batch
        self.index = index
        self._record = record

    @classmethod
    def of_batch(cls, seq: int, batch: SpooledBatch, index: int) -> Queued:
        """Event ``index`` of ``batch`` (the spool's reader makes one per event: no checks to repeat). Sets every
        slot, as ``__init__`` does; tests/unit/test_spool_batches.py holds the two in step."""
        item = cls.__new__(cls)
        item.seq, item.batch, item.index, item.bastion = seq, batch, index, batch.bastion
        item._event = item._record = None
        return item

    @property
    def event(self) -> Event | None:
        """The parsed line (None for other records)."""
        event = self._event
        if event is None and self.batch is not None:
            event = self._event = self.batch.events()[self.index]
        return event

    @property
    def record(self) -> Record:
        """The record (built from the event on first use, then kept)."""
        record = self._record
        if record is None:
            event = self.event
            if event is None:  # cannot happen: __init__ takes exactly one of them
                raise RuntimeError("a queued item without a record or an event")
            record = self._record = event_record(event, self.bastion)
        return record

    def __repr__(self) -> str:
        return f"Queued({self.seq}, {'record ' + self._record.kind.value if self._record is not None else 'event'})"


@dataclass(frozen=True, slots=True)
class SinkBacklog:
    """What one sink still has to deal with."""

    sink: str
    depth: int
    oldest_age_secs: float | None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record a sink rejected for good."""

    number: int
    sink: str
    record: Record
    reason: str
    rejected: float


class Spool:
    """The disk-backed queue shared by the sinks; safe to share between threads (one connection, one lock).

    Open with :meth:`open`. ``on_drop(sink, count)`` is called for records dropped by the bounds.
    """

    def __init__(self, path: Path, conn: sqlite3.Connection, bounds: Bounds, clock: Callable[[], float]) -> None:
        """Wrap an open connection; use :meth:`open` instead."""
        self.path = path
        self.bounds = bounds
        self.on_drop: Callable[[str, int], None] | None = None
        self._conn = conn
        self._clock = clock
        self._lock = threading.Lock()
        self._durable = True  # the connection's synchronous setting: FULL (True) or NORMAL
        self._replayable: set[ReplayKey] = self._load_replayable()
        # Read batches by ``first``, shared by the sinks' workers (each reads every batch) and across the
        # slices of one batch; guarded by ``_lock``, read outside it so the loop's append never waits. Each is
        # decoded only as far as a sink asks (``SpooledBatch``: the Elasticsearch sink's native path needs no
        # ``Event``), and to events, never records: records are dicts, and tens of thousands of them kept
        # alive make every full garbage collection walk them (it doubled the workers' CPU).
        self._decoded: OrderedDict[int, SpooledBatch] = OrderedDict()

    @classmethod
    def open(
        cls, path: Path, sinks: Iterable[str], bounds: Bounds | None = None, *,
        clock: Callable[[], float] = time.time,
    ) -> Spool:
        """Open or create the spool at ``path`` for ``sinks``.

        A new sink starts with whatever is waiting; the cursor of a sink no longer configured is dropped,
        so its backlog no longer holds records back (its dead letters stay, for an operator to look at).
        """
        prepare_directory_or_fail(path)
        try:
            conn = _connect(path)
        except sqlite3.DatabaseError as error:
            # A damaged spool must not keep the daemon (and its bans) down: move it aside, start empty.
            # What it held is lost to shipping, never to detection; the file stays for an operator.
            moved = path.with_name(f"{path.name}.damaged-{int(clock())}")
            log.error("spool %s is damaged (%s); moved to %s, starting an empty one", path, error, moved)
            try:
                path.rename(moved)
                for suffix in SIDECARS:
                    Path(f"{path}{suffix}").unlink(missing_ok=True)
                prepare_directory_or_fail(path)
                conn = _connect(path)
            except (OSError, sqlite3.Error) as again:
                raise SpoolError(f"cannot open spool {path}: {again}") from again
        spool = cls(path, conn, bounds or Bounds(), clock)
        spool.set_sinks(sinks)
        return spool

    @classmethod
    def open_existing(cls, path: Path) -> Spool:
        """Open an existing spool without touching its sinks (``bastionctl deadletter``)."""
        if not path.exists():
            raise SpoolError(f"no spool at {path} (is shipping configured, and the state directory right?)")
        return cls.open(path, ())

    # --- the producer (the daemon's loop) -----------------------------------------------------------------

    def append(self, records: Sequence[Record]) -> int:
        """Add ``records`` (ids already waiting are ignored); return how many were added. Never blocks on the
        bounds: a full spool drops by its policy and counts it."""
        if not records:
            return 0
        return self.append_batch((), "", records)

    def append_batch(self, events: Sequence[Event], bastion: str, records: Sequence[Record] = ()) -> int:
        """Add one loop batch in one transaction (one fsync): ``events`` parsed on ``bastion``, stored as one
        row, then ``records`` (its decisions). Events a crash replays and records already waiting are
        ignored (see the module's docstring); returns how many records were added."""
        if self._replayable and events:
            events = [event for event in events if replay_key(event) not in self._replayable]
        if not events and not records:
            return 0
        now = self._clock()
        rows: list[_Row] = []
        for record in records:
            body = encode(record)
            rows.append((record.id, record.kind.value, record.epoch, body, len(body), now, None))
        return self._insert(rows, _new_batch(bastion, events, now) if events else None)

    # --- the consumers (one worker per sink) --------------------------------------------------------------

    def read(self, sink: str, limit: int, max_bytes: int = 0) -> list[Queued]:
        """Up to ``limit`` records after ``sink``'s cursor, oldest first; with ``max_bytes``, stop before the
        stored size passes it (one record at least), so a batch of long lines stays a sane request size."""
        with self._locked() as conn:
            cursor = self._cursor(conn, sink)
            rows = conn.execute(
                f"SELECT seq, body, bytes FROM records WHERE {_PENDING} ORDER BY seq LIMIT ?",  # noqa: S608
                (cursor, sink, limit),
            ).fetchall()
            # Bodies are fetched one batch at a time, when the reader gets to it (a batch is megabytes).
            batches = conn.execute(
                "SELECT first, last, bytes FROM batches WHERE last > ? ORDER BY first LIMIT ?", (cursor, limit),
            ).fetchall()
        # In place order: the single records (usually none, a few decisions) between the batches' runs.
        taking = _Taking(limit, max_bytes)
        singles = iter(rows)
        single = next(singles, None)
        for first, last, size in batches:
            while single is not None and single[0] < first:
                if not taking.record(*single):
                    return taking.items
                single = next(singles, None)
            batch = self._decoded_batch(first)
            if not taking.events(batch, first, max(0, cursor + 1 - first), size // (last - first + 1)):
                return taking.items
        while single is not None and taking.record(*single):
            single = next(singles, None)
        return taking.items

    def _decoded_batch(self, first: int) -> SpooledBatch:
        with self._locked() as conn:
            cached = self._decoded.get(first)
            if cached is not None:
                return cached
            row = conn.execute("SELECT body FROM batches WHERE first = ?", (first,)).fetchone()
        # Gone since the read began (dropped by the bounds): nothing left to deliver of it.
        decoded = SpooledBatch.empty()
        if row is not None:
            try:
                decoded = SpooledBatch.read(row[0])
            except ValueError as error:  # damaged, or written by a newer version: skip it, never stall on it
                log.error("spool %s: the batch at %d cannot be read (%s); its records are skipped", self.path,
                          first, error)
        with self._lock:
            self._decoded[first] = decoded
            while len(self._decoded) > _DECODED_BATCHES:
                self._decoded.popitem(last=False)
        return decoded

    def complete(self, sink: str, through_seq: int, rejected: Sequence[tuple[Record, str]] = ()) -> None:
        """``sink`` finished everything up to ``through_seq``; ``rejected`` go to the dead-letter store. One
        transaction: a crash leaves either both or neither, so a rejection is never recorded twice."""
        now = self._clock()
        # Not fsync'ed by itself: losing a cursor step to a power cut only re-sends records (duplicates the far
        # end drops by id); the next append's FULL commit makes it durable with the records anyway.
        with self._transaction(durable=bool(rejected)) as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO deadletters (sink, id, kind, epoch, body, reason, rejected) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(sink, r.id, r.kind.value, r.epoch, encode(r), reason, now) for r, reason in rejected],
            )
            conn.execute("UPDATE cursors SET seq = MAX(seq, ?) WHERE sink = ?", (through_seq, sink))
            self._collect(conn, sink, through_seq)

    # --- observation ------------------------------------------------------------------------------------------

    def backlog(self) -> list[SinkBacklog]:
        """Depth and age of the oldest waiting record, per sink."""
        now = self._clock()
        with self._locked() as conn:
            result = []
            for sink, cursor in conn.execute("SELECT sink, seq FROM cursors ORDER BY sink").fetchall():
                depth, oldest = conn.execute(
                    f"SELECT COUNT(*), MIN(added) FROM records WHERE {_PENDING}",  # noqa: S608 (constant)
                    (cursor, sink),
                ).fetchone()
                in_batches, batch_oldest = conn.execute(
                    f"SELECT {_BATCH_DEPTH}, MIN(added) FROM batches WHERE last > ?",  # noqa: S608 (constant)
                    (cursor, cursor),
                ).fetchone()
                depth += in_batches
                oldest = min((added for added in (oldest, batch_oldest) if added is not None), default=None)
                result.append(SinkBacklog(sink, depth, None if oldest is None else max(0.0, now - oldest)))
        return result

    def size(self) -> tuple[int, int]:
        """``(records, bytes)`` in the spool."""
        with self._locked() as conn:
            records, size = conn.execute("SELECT records, bytes FROM totals").fetchone()
        return int(records), int(size)

    # --- dead letters -----------------------------------------------------------------------------------------

    def dead_letters(self, sink: str | None = None) -> list[DeadLetter]:
        """Every dead letter (of ``sink``), oldest first."""
        sql = "SELECT number, sink, body, reason, rejected FROM deadletters"
        params: tuple[str, ...] = ()
        if sink is not None:
            sql += " WHERE sink = ?"
            params = (sink,)
        with self._locked() as conn:
            rows = conn.execute(sql + " ORDER BY number", params).fetchall()
        return [DeadLetter(number, name, decode(body), reason, at) for number, name, body, reason, at in rows]

    def dead_letter(self, number: int) -> DeadLetter | None:
        """One dead letter by its number."""
        return next((letter for letter in self.dead_letters() if letter.number == number), None)

    def replay(self, numbers: Sequence[int] | None = None, sink: str | None = None) -> int:
        """Put dead letters back in the spool for the sink that rejected them (or only those of ``sink``);
        ``numbers`` None means all. Returns how many were re-queued."""
        letters = [
            letter for letter in self.dead_letters(sink)
            if numbers is None or letter.number in numbers
        ]
        now = self._clock()
        with self._transaction() as conn:
            seq = self._take_seqs(conn, len(letters))
            for letter in letters:
                body = encode(letter.record)
                # A copy of the same id waiting for that sink already is enough: replace it at the end.
                conn.execute("DELETE FROM records WHERE id = ? AND only_sink = ?", (letter.record.id, letter.sink))
                conn.execute(_INSERT, (seq, letter.record.id, letter.record.kind.value, letter.record.epoch, body,
                                       len(body), now, letter.sink))
                seq += 1
                conn.execute("DELETE FROM deadletters WHERE number = ?", (letter.number,))
        return len(letters)

    def set_sinks(self, sinks: Iterable[str]) -> None:
        """Make the cursors match the configured sinks (see :meth:`open`); no-op for an empty list."""
        names = list(sinks)
        if not names:
            return
        with self._transaction() as conn:
            known = {row[0] for row in conn.execute("SELECT sink FROM cursors")}
            for name in names:
                if name not in known:
                    conn.execute("INSERT INTO cursors (sink, seq) VALUES (?, 0)", (name,))
            for name in known - set(names):
                conn.execute("DELETE FROM cursors WHERE sink = ?", (name,))
                conn.execute("DELETE FROM records WHERE only_sink = ?", (name,))
            self._collect(conn, None, 0)

    def close(self) -> None:
        """Close the file; closing twice is harmless."""
        with self._lock:
            self._conn.close()

    # --- helpers ----------------------------------------------------------------------------------------------

    def _insert(self, rows: list[_Row], batch: _NewBatch | None) -> int:
        bounds = self.bounds
        incoming_records = len(rows) + (0 if batch is None else len(batch.events))
        incoming_bytes = sum(row[4] for row in rows) + (0 if batch is None else len(batch.body))
        with self._transaction() as conn:
            records, size = conn.execute("SELECT records, bytes FROM totals").fetchone()
            over_records = bounds.max_records and records + incoming_records > bounds.max_records
            over_bytes = bounds.max_bytes and size + incoming_bytes > bounds.max_bytes
            if (over_records or over_bytes) and bounds.policy is Policy.DROP_NEWEST:
                if batch is not None:
                    batch = self._fit_batch(conn, batch, records, size)
                    if batch is not None:
                        records, size = records + len(batch.events), size + len(batch.body)
                rows = self._fit_newest(conn, rows, records, size)
            added = 0
            if batch is not None:
                first = self._take_seqs(conn, len(batch.events))
                conn.execute("INSERT INTO batches (first, last, bytes, added, body) VALUES (?, ?, ?, ?, ?)",
                             (first, first + len(batch.events) - 1, len(batch.body), batch.added, batch.body))
                added += len(batch.events)
            if rows:
                seq = self._take_seqs(conn, len(rows))
                numbered = [(seq + index, *row) for index, row in enumerate(rows)]
                added += max(0, conn.executemany(_INSERT, numbered).rowcount)  # sqlite3_changes(): no triggers
            if (over_records or over_bytes) and bounds.policy is Policy.DROP_OLDEST:
                self._drop_oldest(conn)
        return added

    def _fit_batch(self, conn: sqlite3.Connection, batch: _NewBatch, records: int, size: int) -> _NewBatch | None:
        """Under drop_newest: the longest head of ``batch`` that still fits (sized by the batch's average
        event), or None; the rest is counted as dropped for every sink."""
        count = len(batch.events)
        room = count
        if self.bounds.max_records:
            room = min(room, max(0, self.bounds.max_records - records))
        if self.bounds.max_bytes:
            room = min(room, max(0, self.bounds.max_bytes - size) * count // len(batch.body))
        if room < count:
            for (sink,) in conn.execute("SELECT sink FROM cursors").fetchall():
                self._dropped(sink, count - room)
        if room == 0:
            return None
        return batch if room == count else _new_batch(batch.bastion, batch.events[:room], batch.added)

    @staticmethod
    def _take_seqs(conn: sqlite3.Connection, count: int) -> int:
        """Reserve ``count`` places in the sequence (inside the caller's transaction); return the first."""
        first = int(conn.execute("SELECT next FROM sequence").fetchone()[0])
        conn.execute("UPDATE sequence SET next = ?", (first + count,))
        return first

    def _load_replayable(self) -> set[ReplayKey]:
        """The events of the last :data:`REPLAY_WINDOW` batches waiting: what a replay may bring again."""
        with self._locked() as conn:
            bodies = [row[0] for row in conn.execute(
                "SELECT body FROM batches ORDER BY first DESC LIMIT ?", (REPLAY_WINDOW,))]
        return replay_keys(bodies)

    def _fit_newest(self, conn: sqlite3.Connection, rows: list[_Row], records: int, size: int) -> list[_Row]:
        """Keep the rows that still fit; count the rest as dropped for every sink. Ids already waiting are
        no loss (a replayed batch), so they are left to the insert to ignore."""
        kept = []
        dropped = 0
        for row in rows:
            if conn.execute("SELECT 1 FROM records WHERE id = ? AND only_sink IS NULL", (row[0],)).fetchone():
                kept.append(row)  # the insert ignores it
                continue
            row_bytes = row[4]
            fits_records = not self.bounds.max_records or records + 1 <= self.bounds.max_records
            fits_bytes = not self.bounds.max_bytes or size + row_bytes <= self.bounds.max_bytes
            if fits_records and fits_bytes:
                kept.append(row)
                records += 1
                size += row_bytes
            else:
                dropped += 1
        if dropped:
            for (sink,) in conn.execute("SELECT sink FROM cursors").fetchall():
                self._dropped(sink, dropped)
        return kept

    def _drop_oldest(self, conn: sqlite3.Connection) -> None:
        """Delete the oldest records until the spool is within its bounds; count each drop per waiting sink."""
        bounds = self.bounds
        records, size = conn.execute("SELECT records, bytes FROM totals").fetchone()
        excess_records = max(0, records - bounds.max_records) if bounds.max_records else 0
        excess_bytes = max(0, size - bounds.max_bytes) if bounds.max_bytes else 0
        last = 0
        running = 0
        count = 0
        # Oldest first across both tables; a batch of events goes (or stays) as a whole.
        for first, row_last, row_bytes in conn.execute(
            "SELECT seq, seq, bytes FROM records UNION ALL SELECT first, last, bytes FROM batches ORDER BY 1",
        ):
            if count >= excess_records and running >= excess_bytes:
                break
            last, running, count = row_last, running + row_bytes, count + row_last - first + 1
        if not count:
            return
        for sink, cursor in conn.execute("SELECT sink, seq FROM cursors").fetchall():
            lost = conn.execute(
                f"SELECT COUNT(*) FROM records WHERE {_PENDING} AND seq <= ?",  # noqa: S608 (constant)
                (cursor, sink, last),
            ).fetchone()[0]
            lost += conn.execute(
                f"SELECT {_BATCH_DEPTH} FROM batches WHERE last > ? AND last <= ?",  # noqa: S608 (constant)
                (cursor, cursor, last),
            ).fetchone()[0]
            if lost:
                self._dropped(sink, lost)
        conn.execute("DELETE FROM records WHERE seq <= ?", (last,))
        conn.execute("DELETE FROM batches WHERE last <= ?", (last,))

    def _dropped(self, sink: str, count: int) -> None:
        if self.on_drop is not None:
            self.on_drop(sink, count)

    @staticmethod
    def _cursor(conn: sqlite3.Connection, sink: str) -> int:
        row = conn.execute("SELECT seq FROM cursors WHERE sink = ?", (sink,)).fetchone()
        if row is None:
            raise SpoolError(f"sink {sink!r} has no cursor in the spool (not configured)")
        return int(row[0])

    @staticmethod
    def _collect(conn: sqlite3.Connection, sink: str | None, through_seq: int) -> None:
        """Delete what every sink has finished (and ``sink``'s own re-queued records up to ``through_seq``)."""
        if sink is not None:
            conn.execute("DELETE FROM records WHERE only_sink = ? AND seq <= ?", (sink, through_seq))
        floor = conn.execute("SELECT MIN(seq) FROM cursors").fetchone()[0]
        if floor is not None:
            conn.execute("DELETE FROM records WHERE only_sink IS NULL AND seq <= ?", (floor,))
            conn.execute("DELETE FROM batches WHERE last <= ?", (floor,))

    @contextlib.contextmanager
    def _locked(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._conn
            except sqlite3.Error as error:
                raise SpoolError(f"cannot read spool {self.path}: {error}") from error

    @contextlib.contextmanager
    def _transaction(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction; ``durable`` commits with an fsync (synchronous FULL), else WAL NORMAL."""
        with self._lock:
            conn = self._conn
            try:
                if durable is not self._durable:
                    conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
                    self._durable = durable
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.execute("COMMIT")
            except sqlite3.Error as error:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise SpoolError(f"cannot write spool {self.path}: {error}") from error
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise


class _Taking:
    """What one read takes: up to ``limit`` items and, with ``max_bytes``, no more stored bytes than that
    (one item at least); at the first item that does not fit, the read is over. A batch's events are
    taken a run at a time (each counted at the batch's average size), not looked at one by one."""

    def __init__(self, limit: int, max_bytes: int) -> None:
        self.items: list[Queued] = []
        self._limit = limit
        self._max_bytes = max_bytes
        self._bytes = 0

    def _room(self, count: int, size: int) -> int:
        """How many of ``count`` items of ``size`` stored bytes each still fit."""
        room = min(count, self._limit - len(self.items))
        if self._max_bytes and size:
            room = min(room, max((self._max_bytes - self._bytes) // size, 0 if self.items else 1))
        return max(room, 0)

    def record(self, seq: int, body: bytes, size: int) -> bool:
        """Take a single record's row if it fits; whether it did."""
        if not self._room(1, size):
            return False
        self._bytes += size
        self.items.append(Queued(seq, decode(body)))
        return True

    def events(self, batch: SpooledBatch, first: int, start: int, share: int) -> bool:
        """Take the events of ``batch`` (spooled at ``first``) from ``start`` on that fit; whether all did."""
        count = max(batch.count - start, 0)
        room = self._room(count, share)
        self._bytes += room * share
        of_batch = Queued.of_batch
        self.items += [of_batch(first + index, batch, index) for index in range(start, start + room)]
        return room == count


@dataclass(frozen=True, slots=True)
class _NewBatch:
    """A loop batch's events on their way in, with their stored form (:func:`_new_batch` encodes it)."""

    bastion: str
    events: Sequence[Event]
    added: float
    body: bytes


def _new_batch(bastion: str, events: Sequence[Event], added: float) -> _NewBatch:
    return _NewBatch(bastion, events, added, encode_events(bastion, events))


def _connect(path: Path) -> sqlite3.Connection:
    """Open ``path`` in WAL mode with the schema; sqlite3 errors propagate (a damaged file among them)."""
    conn = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_SECS, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        # FULL: a record appended is on disk before the source position that follows it is committed.
        conn.execute("PRAGMA synchronous = FULL")
        conn.executescript(_SCHEMA)
    except BaseException:
        conn.close()
        raise
    return conn


def encode(record: Record) -> bytes:
    """The stored form: :meth:`Record.to_json`'s JSON as UTF-8 bytes, by orjson (five times faster than json,
    and JSON encoding is the largest cost of spooling)."""
    return orjson.dumps({"id": record.id, "kind": record.kind.value, "epoch": record.epoch, "body": record.body})


def decode(stored: bytes | str) -> Record:
    """Inverse of :func:`encode` (also reads what :meth:`Record.to_json` wrote)."""
    data = orjson.loads(stored)
    return Record(data["id"], RecordKind(data["kind"]), float(data["epoch"]), data["body"])


def prepare_directory_or_fail(path: Path) -> None:
    """Create the directory (0700) and the file (0600) before SQLite opens it, as the state store does."""
    try:
        prepare_directory(path.parent)
        create_file(path)
    except BastionError as error:
        raise SpoolError(str(error).replace("state database", "spool")) from error


__all__ = ["Bounds", "DeadLetter", "Policy", "Queued", "SinkBacklog", "Spool", "SpoolError"]
