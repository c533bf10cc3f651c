"""Numbered schema migrations and the ``schema_version`` table that records them.

Migration *n* takes a database from version *n - 1* to *n*; a new database (version 0) runs all of them.
Each runs in its own ``BEGIN IMMEDIATE`` transaction together with the row that records it, so a crash
or error mid-migration leaves the previous version intact (SQLite's DDL is transactional).

To add migration 2: write ``_migrate_v2(conn)`` and append ``Migration(2, "...", _migrate_v2)`` to
:data:`MIGRATIONS`. Never edit a released migration; a database on disk was made by it. A migration must
not COMMIT or call ``executescript`` (which commits first), and if it renames a column, update
:data:`TABLE_COLUMNS`, which both the schema check and the salvage of a damaged file read.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bastion_guard.state.errors import StateError

SCHEMA_VERSION_DDL = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    applied REAL NOT NULL,
    description TEXT NOT NULL
)"""

TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "positions": ("source", "identity", "offset", "cursor", "updated"),
    "bans": ("target", "rule", "created", "expires", "offence", "reason", "origin", "evidence"),
    "ban_history": ("rule", "target", "offences", "last_epoch"),
    "key_uses": ("fingerprint", "last_used", "user", "ip"),
    "engine_counts": ("id", "saved", "data"),
}
"""The tables of the current schema and their columns."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: ``apply`` runs inside the transaction that records ``version``."""

    version: int
    description: str
    apply: Callable[[sqlite3.Connection], None]


_V1_STATEMENTS = (
    # Where each source was read up to; saved only together with the effects of the lines before it.
    """CREATE TABLE positions (
        source TEXT PRIMARY KEY NOT NULL,
        identity TEXT,
        offset INTEGER NOT NULL CHECK (offset >= 0),
        cursor TEXT,
        updated REAL NOT NULL
    )""",
    # One row per banned target: the ban with the latest expiry (see StateStore.commit).
    """CREATE TABLE bans (
        target TEXT PRIMARY KEY NOT NULL,
        rule TEXT NOT NULL,
        created REAL NOT NULL,
        expires REAL NOT NULL,
        offence INTEGER NOT NULL,
        reason TEXT NOT NULL,
        origin TEXT NOT NULL,
        evidence TEXT NOT NULL  -- JSON list of [epoch, source, position]
    )""",
    # active_bans() and purge() select by expiry; without the index both scan every ban.
    "CREATE INDEX bans_by_expiry ON bans (expires)",
    # Offences per (rule, target), for longer bans on repeat offenders.
    """CREATE TABLE ban_history (
        rule TEXT NOT NULL,
        target TEXT NOT NULL,
        offences INTEGER NOT NULL,
        last_epoch REAL NOT NULL,
        PRIMARY KEY (rule, target)
    )""",
    # purge() drops history by age.
    "CREATE INDEX ban_history_by_age ON ban_history (last_epoch)",
)


def _migrate_v1(conn: sqlite3.Connection) -> None:
    """Create every table and index of version 1."""
    for statement in _V1_STATEMENTS:
        conn.execute(statement)


def _migrate_v2(conn: sqlite3.Connection) -> None:
    """Last use of each key fingerprint (``Accepted publickey ... SHA256:``), for ``bastionctl keys list``."""
    conn.execute(
        """CREATE TABLE key_uses (
            fingerprint TEXT PRIMARY KEY NOT NULL,
            last_used REAL NOT NULL,
            user TEXT,
            ip TEXT
        )"""
    )


def _migrate_v3(conn: sqlite3.Connection) -> None:
    """The rules engine's counts in progress, saved with the positions at a clean stop (one row at most)."""
    conn.execute(
        """CREATE TABLE engine_counts (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            saved REAL NOT NULL,
            data BLOB NOT NULL  -- bastion_guard.rules.counts.encode()
        )"""
    )


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "positions, bans and ban history", _migrate_v1),
    Migration(2, "last use of each key fingerprint", _migrate_v2),
    Migration(3, "counts in progress across a restart", _migrate_v3),
)
"""Every migration, in order; ``MIGRATIONS[i].version == i + 1``."""


def latest_version(migrations: Sequence[Migration] | None = None) -> int:
    """The schema version this code writes."""
    steps = MIGRATIONS if migrations is None else migrations
    return steps[-1].version if steps else 0


def schema_version(conn: sqlite3.Connection) -> int:
    """The version a database is at; 0 for a new (or foreign) one without a ``schema_version`` table."""
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").fetchone()
    if found is None:
        return 0
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0]) if row is not None and row[0] is not None else 0


def check_version(conn: sqlite3.Connection, migrations: Sequence[Migration] | None = None) -> int:
    """The database's version; :class:`StateError` if a newer bastion-guard wrote it. Only reads."""
    found = schema_version(conn)
    latest = latest_version(migrations)
    if found > latest:
        # Never touch it: going back to the newer release must still find its data as it left it.
        raise StateError(f"schema version {found} is newer than this bastion-guard understands ({latest})")
    return found


def migrate(conn: sqlite3.Connection, now: float, migrations: Sequence[Migration] | None = None) -> tuple[int, int]:
    """Bring ``conn`` (opened with ``isolation_level=None``) to the latest version; returns (from, to).

    Raises :class:`StateError` for a database newer than this code, and lets :class:`sqlite3.Error`
    through for the caller to classify (damage or not); a failed migration is rolled back whole.
    """
    steps = MIGRATIONS if migrations is None else migrations
    for index, step in enumerate(steps):
        if step.version != index + 1:
            raise ValueError(f"migration {step.version} is at position {index + 1}; versions must be 1, 2, 3, ...")
    start = check_version(conn, steps)
    latest = latest_version(steps)
    for step in steps[start:]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Re-read under the write lock: another process may have migrated since we looked.
            if schema_version(conn) < step.version:
                conn.execute(SCHEMA_VERSION_DDL)
                step.apply(conn)
                conn.execute(
                    "INSERT INTO schema_version (version, applied, description) VALUES (?, ?, ?)",
                    (step.version, now, step.description),
                )
            conn.execute("COMMIT")
        except BaseException as exc:
            if isinstance(exc, sqlite3.Error):
                exc.add_note(f"while migrating to schema version {step.version} ({step.description})")
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return start, latest
