"""The durable state of the daemon in one SQLite file: read positions, active bans and ban history.

The daemon's exactly-once contract rests on :meth:`StateStore.commit`: the positions of the lines read
and the bans they caused are saved in one transaction, so after a crash either both are on disk or
neither is, and the lines are read again. WAL with ``synchronous=FULL`` makes a commit durable once it
returns. A damaged file is moved aside and salvaged rather than stopping the daemon (see
:mod:`bastion_guard.state.recovery`); problems that a fresh file cannot fix raise :class:`StateError`.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from bastion_guard.state.errors import StateError
from bastion_guard.state.files import create_file, prepare_directory
from bastion_guard.state.migrations import TABLE_COLUMNS, check_version, migrate
from bastion_guard.state.records import BanRecord, KeyUse, Position, Purged, decode_evidence, encode_evidence
from bastion_guard.state.recovery import RecoveryReport, is_damage, quarantine, read_only_uri, salvage

logger = logging.getLogger(__name__)

History = Mapping[tuple[str, str], tuple[int, float]]
"""Offences per (rule, target): (count, event time of the last one)."""

_NO_HISTORY: History = types.MappingProxyType({})
# Another process opening the same file (a second store, a migration) may hold the write lock briefly; wait.
_BUSY_TIMEOUT_SECS = 10.0
# Checkpoints leave the WAL at its largest size; cap what stays on disk between them.
_JOURNAL_SIZE_LIMIT_BYTES = 4 * 1024 * 1024

_UPSERT_POSITION = """
INSERT INTO positions (source, identity, offset, cursor, updated) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (source) DO UPDATE SET
    identity = excluded.identity, offset = excluded.offset, cursor = excluded.cursor, updated = excluded.updated
"""
# A second ban of a banned target replaces the row only when it ends later: the row always describes
# the ban that is being enforced, and replaying an older decision cannot shorten it.
_UPSERT_BAN = """
INSERT INTO bans (target, rule, created, expires, offence, reason, origin, evidence) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (target) DO UPDATE SET
    rule = excluded.rule, created = excluded.created, expires = excluded.expires, offence = excluded.offence,
    reason = excluded.reason, origin = excluded.origin, evidence = excluded.evidence
WHERE excluded.expires > bans.expires
"""
_UPSERT_HISTORY = """
INSERT INTO ban_history (rule, target, offences, last_epoch) VALUES (?, ?, ?, ?)
ON CONFLICT (rule, target) DO UPDATE SET offences = excluded.offences, last_epoch = excluded.last_epoch
"""
# Replaying older lines never moves a key's last use back in time.
_UPSERT_KEY_USE = """
INSERT INTO key_uses (fingerprint, last_used, user, ip) VALUES (?, ?, ?, ?)
ON CONFLICT (fingerprint) DO UPDATE SET last_used = excluded.last_used, user = excluded.user, ip = excluded.ip
WHERE excluded.last_used > key_uses.last_used
"""
_BAN_COLUMNS = "target, rule, created, expires, offence, reason, origin, evidence"


class _DamagedError(Exception):
    """The file is corrupt, not a database, or unreadable: quarantine it (never leaves this module)."""


class StateStore:
    """Positions, bans and ban history in one SQLite database; safe to share between threads.

    Open with :meth:`open`. ``recovery`` is None unless the file was damaged and replaced at open.
    """

    def __init__(self, path: Path, conn: sqlite3.Connection, clock: Callable[[], float]) -> None:
        """Wrap an open, migrated connection; use :meth:`open` instead."""
        self.path = path
        self.recovery: RecoveryReport | None = None
        self._conn: sqlite3.Connection | None = conn
        self._clock = clock
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path, *, clock: Callable[[], float] = time.time) -> StateStore:
        """Open or create the database at ``path``; a damaged one is quarantined, salvaged and replaced.

        ``clock`` stamps ``positions.updated``, migrations and quarantine names. Raises
        :class:`StateError` when the directory or file cannot be created or written, or the schema is
        newer than this code.
        """
        path = Path(path)
        prepare_directory(path.parent)
        create_file(path)
        try:
            conn = _connect(path, clock())
        except _DamagedError as damage:
            return cls._replace_damaged(path, str(damage), clock)
        return cls(path, conn, clock)

    @classmethod
    def _replace_damaged(cls, path: Path, reason: str, clock: Callable[[], float]) -> StateStore:
        """Move the damaged file aside, start a fresh one and put back what could be read."""
        logger.error("state database %s is damaged (%s); moving it aside and starting a fresh one", path, reason)
        try:
            moved = quarantine(path, clock())
        except OSError as exc:
            cause = exc.strerror or exc
            raise StateError(f"state database {path} is damaged ({reason}) and cannot be moved aside: {cause}") from exc
        rows = salvage(moved[0])
        create_file(path)
        try:
            conn = _connect(path, clock())
        except _DamagedError as damage:
            raise StateError(f"new state database {path} is damaged too ({damage}): check the disk") from damage
        store = cls(path, conn, clock)
        # Positions without all the bans they led to would skip the lines behind the lost bans; without
        # positions, those lines are read again and the bans decided again.
        restore_positions = rows.complete("bans") and rows.complete("ban_history")
        positions = rows.positions if restore_positions else []
        try:
            store.commit(positions, rows.bans, (), rows.history)
        except BaseException:
            store.close()
            raise
        store.recovery = RecoveryReport(
            path=path,
            reason=reason,
            quarantined=moved,
            recovered={"positions": len(positions), "bans": len(rows.bans), "ban_history": len(rows.history)},
            skipped=dict(rows.skipped),
            problems=tuple(rows.problems),
            positions_restored=restore_positions,
        )
        logger.warning("%s", store.recovery)
        return store

    def commit(
        self,
        positions: Sequence[Position] = (),
        bans: Sequence[BanRecord] = (),
        unbans: Sequence[str] = (),
        history: History = _NO_HISTORY,
        key_uses: Sequence[KeyUse] = (),
        *,
        counts: bytes | None = None,
        forget_counts: bool = False,
    ) -> None:
        """Save positions, bans, unbans and history in one transaction: all of it or, on error, none.

        ``counts`` (the engine's counts in progress, at a clean stop) belong to exactly these positions, so
        they are saved in the same transaction, and :meth:`saved_counts` reads them at the next start.
        ``forget_counts`` deletes them, in the transaction that first moves a position past them: until
        then they stay valid, so a start that fails half-way loses nothing.

        Unbans are applied before bans, so a target both expired and banned again in one batch stays
        banned. A ban for a banned target keeps whichever ends later. ``history`` entries are set, not
        added to; ``key_uses`` keep the latest use per fingerprint. A failure (a full disk included) rolls
        everything back and raises :class:`StateError`; the store stays usable and the same batch can be
        committed again.
        """
        if isinstance(unbans, str):
            raise TypeError("unbans is a sequence of targets, not one target")
        now = self._clock()
        # Encode before the transaction, so bad input fails without having taken the write lock.
        position_rows = [(p.source, p.identity, p.offset, p.cursor, now) for p in positions]
        unban_rows = [(target,) for target in unbans]
        ban_rows = [
            (b.target, b.rule, b.created, b.expires, b.offence, b.reason, b.origin, encode_evidence(b.evidence))
            for b in bans
        ]
        history_rows = [(rule, target, count, last) for (rule, target), (count, last) in history.items()]
        key_rows = [(use.fingerprint, use.last_used, use.user, use.ip) for use in key_uses]
        if not (position_rows or unban_rows or ban_rows or history_rows or key_rows or counts is not None
                or forget_counts):
            return
        with self._transaction("cannot save state to") as conn:
            if forget_counts:
                conn.execute("DELETE FROM engine_counts")
            if counts is not None:
                conn.execute("INSERT OR REPLACE INTO engine_counts (id, saved, data) VALUES (1, ?, ?)", (now, counts))
            conn.executemany(_UPSERT_POSITION, position_rows)
            conn.executemany("DELETE FROM bans WHERE target = ?", unban_rows)
            conn.executemany(_UPSERT_BAN, ban_rows)
            conn.executemany(_UPSERT_HISTORY, history_rows)
            conn.executemany(_UPSERT_KEY_USE, key_rows)

    def saved_counts(self) -> bytes | None:
        """The counts saved at the last clean stop, if no position has moved since (see :meth:`commit`)."""
        rows = self._query("SELECT data FROM engine_counts WHERE id = 1")
        return bytes(rows[0][0]) if rows else None

    def positions(self) -> dict[str, Position]:
        """The saved position of every source, by source name."""
        rows = self._query("SELECT source, identity, offset, cursor FROM positions ORDER BY source")
        return {row[0]: Position(*row) for row in rows}

    def active_bans(self, now: float) -> list[BanRecord]:
        """Bans that end after ``now`` (event time), soonest first."""
        # Column list is a constant; only ``now`` is a parameter.
        sql = f"SELECT {_BAN_COLUMNS} FROM bans WHERE expires > ? ORDER BY expires, target"  # noqa: S608
        return [self._ban(row) for row in self._query(sql, (now,))]

    def active_expiries(self, now: float) -> list[tuple[str, float]]:
        """``(target, expires)`` of the bans that end after ``now``: what a restore needs, without the evidence.

        Soonest first, in the expiry index's order: sorting ties by target as well cost a temporary B-tree,
        a third of the read at 100,000 bans, and the restore does not depend on the order.
        """
        rows: list[tuple[str, float]] = self._query(
            "SELECT target, expires FROM bans WHERE expires > ? ORDER BY expires", (now,)
        )
        return rows  # sqlite3 rows are tuples already

    def count_active(self, now: float) -> int:
        """How many bans end after ``now``."""
        rows = self._query("SELECT COUNT(*) FROM bans WHERE expires > ?", (now,))
        return int(rows[0][0])

    def ban(self, target: str) -> BanRecord | None:
        """The ban of ``target``, expired or not, if there is one."""
        rows = self._query(f"SELECT {_BAN_COLUMNS} FROM bans WHERE target = ?", (target,))  # noqa: S608
        return self._ban(rows[0]) if rows else None

    def history(self) -> dict[tuple[str, str], tuple[int, float]]:
        """Offences per (rule, target): (count, event time of the last one)."""
        rows = self._query("SELECT rule, target, offences, last_epoch FROM ban_history")
        return {(rule, target): (offences, last) for rule, target, offences, last in rows}

    def key_uses(self) -> dict[str, KeyUse]:
        """The last use of every key fingerprint seen in an ``Accepted publickey`` line."""
        rows = self._query("SELECT fingerprint, last_used, user, ip FROM key_uses")
        return {row[0]: KeyUse(*row) for row in rows}

    def purge(self, now: float, history_older_than_secs: float) -> Purged:
        """Delete bans that ended by ``now`` and history older than the given age, so the file stays small."""
        with self._transaction("cannot purge") as conn:
            bans = conn.execute("DELETE FROM bans WHERE expires <= ?", (now,)).rowcount
            cutoff = now - history_older_than_secs
            history = conn.execute("DELETE FROM ban_history WHERE last_epoch < ?", (cutoff,)).rowcount
        return Purged(bans=bans, history=history)

    def close(self) -> None:
        """Close the database; further calls raise :class:`StateError`. Closing twice is harmless."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> StateStore:
        """Use the store in a ``with`` block that closes it."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the store."""
        self.close()

    def _live(self) -> sqlite3.Connection:
        """The open connection (the caller holds the lock)."""
        if self._conn is None:
            raise StateError(f"state database {self.path} is closed")
        return self._conn

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """All rows of one read."""
        with self._lock:
            try:
                return self._live().execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise StateError(self._explain("cannot read", exc)) from exc

    def _ban(self, row: Any) -> BanRecord:
        """A ``bans`` row as a record."""
        target, rule, created, expires, offence, reason, origin, evidence = row
        try:
            decoded = decode_evidence(evidence)
        except ValueError as exc:
            raise StateError(f"cannot read {self.path}: evidence of the ban of {target} is damaged: {exc}") from exc
        return BanRecord(target, rule, created, expires, offence, reason, origin, decoded)

    @contextlib.contextmanager
    def _transaction(self, failure: str) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed if the block succeeds, rolled back (and explained) if not."""
        with self._lock:
            conn = self._live()
            try:
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback(conn)
                raise StateError(self._explain(failure, exc)) from exc
            except BaseException:
                self._rollback(conn)
                raise

    def _rollback(self, conn: sqlite3.Connection) -> None:
        """Undo an open transaction; SQLite may already have undone it (e.g. on a full disk)."""
        if not conn.in_transaction:
            return
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            # Nothing more to do: WAL frames without a commit record are ignored by every reader and reopen.
            logger.exception("rollback failed on state database %s", self.path)

    def _explain(self, action: str, exc: sqlite3.Error) -> str:
        """A message naming the file and the cause, in an operator's words."""
        if getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_FULL:
            cause = "the disk is full; nothing of this change was saved (free space and it can be retried)"
        elif is_damage(exc):
            cause = f"the database is damaged ({exc}); restart to move it aside and recover it"
        else:
            cause = str(exc)
        return f"{action} {self.path}: {cause}"


def _connect(path: Path, now: float) -> sqlite3.Connection:
    """Check, open and migrate the database; :class:`_DamagedError` if the file is damaged."""
    _check_health(path)
    try:
        # isolation_level=None: we issue BEGIN IMMEDIATE / COMMIT ourselves.
        # check_same_thread=False: callers use asyncio.to_thread; StateStore serialises with a lock.
        conn = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_SECS, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise StateError(f"cannot open state database {path}: {exc}") from exc
    try:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StateError(f"cannot use WAL for state database {path} (journal mode stays {mode!r})")
        # FULL: a commit is on disk when it returns, so positions never get ahead of the bans they caused.
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute(f"PRAGMA journal_size_limit = {_JOURNAL_SIZE_LIMIT_BYTES}")
        migrate(conn, now)
        _check_schema(conn, path)
    except sqlite3.Error as exc:
        conn.close()
        if is_damage(exc):
            raise _DamagedError(str(exc)) from exc
        detail = "; ".join([str(exc), *getattr(exc, "__notes__", ())])
        raise StateError(f"cannot open state database {path}: {detail}") from exc
    except BaseException:
        conn.close()
        raise
    return conn


def _check_health(path: Path) -> None:
    """Raise :class:`_DamagedError` for a damaged file and :class:`StateError` for a newer one; writes nothing.

    Read-only on purpose: closing a read-write connection checkpoints the WAL into the file and deletes
    it, which would change a damaged file before it is quarantined and destroy the WAL beside it.
    """
    try:
        conn = sqlite3.connect(read_only_uri(path), uri=True, timeout=_BUSY_TIMEOUT_SECS, isolation_level=None)
    except sqlite3.Error as exc:
        raise StateError(f"cannot open state database {path}: {exc}") from exc
    try:
        problems = [str(row[0]) for row in conn.execute("PRAGMA quick_check(10)")]
        if problems != ["ok"]:
            raise _DamagedError("quick_check: " + "; ".join(problems))
        check_version(conn)
    except sqlite3.Error as exc:
        if is_damage(exc):
            raise _DamagedError(str(exc)) from exc
        raise StateError(f"cannot open state database {path}: {exc}") from exc
    except StateError as exc:
        raise StateError(f"cannot open state database {path}: {exc}") from exc
    finally:
        conn.close()


def _check_schema(conn: sqlite3.Connection, path: Path) -> None:
    """Fail early and clearly if a table or column the store needs is missing (a foreign database)."""
    for table, columns in TABLE_COLUMNS.items():
        try:
            conn.execute(f"SELECT {', '.join(columns)} FROM {table} LIMIT 0")  # noqa: S608 (names are constants)
        except sqlite3.OperationalError as exc:
            if is_damage(exc):
                raise
            raise StateError(f"{path} is not a bastion-guard state database: {exc}") from exc
