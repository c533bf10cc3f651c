"""A damaged state database: tell damage apart, move the file aside (never delete it), salvage its rows.

SQLite's ``.recover`` lives in the sqlite3 shell, not in Python's module, so salvage does what plain
SELECTs can: each table is read in rowid order up to the first unreadable page, then backwards from the
end down to it, so one bad page costs the rows on that page and not every row after it.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bastion_guard.state.files import SIDECARS, fsync_directory
from bastion_guard.state.migrations import TABLE_COLUMNS
from bastion_guard.state.records import BanRecord, Position, decode_evidence

# Damage, as opposed to a busy lock, a full disk or a permission problem: retrying will not help.
_DAMAGE_PRIMARY = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}
_DAMAGE_EXTENDED = {sqlite3.SQLITE_IOERR_READ, sqlite3.SQLITE_IOERR_SHORT_READ}


def is_damage(exc: sqlite3.Error) -> bool:
    """Whether an error means the file is corrupt, not a database, or cannot be read back."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        return False
    return code & 0xFF in _DAMAGE_PRIMARY or code in _DAMAGE_EXTENDED


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """What happened when the state database was found damaged and replaced."""

    path: Path
    reason: str
    quarantined: tuple[Path, ...]
    recovered: dict[str, int]
    skipped: dict[str, int]
    problems: tuple[str, ...]
    positions_restored: bool

    def __str__(self) -> str:
        return self.describe()

    def describe(self) -> str:
        """One line for the log: what was wrong, where the old file went, what came back."""
        counts = ", ".join(f"{count} {table}" for table, count in self.recovered.items() if count) or "nothing"
        moved = ", ".join(str(p) for p in self.quarantined)
        text = f"state database {self.path} was damaged ({self.reason}); moved to {moved}; recovered {counts}"
        if sum(self.skipped.values()):
            text += f"; skipped {sum(self.skipped.values())} unreadable rows"
        if not self.positions_restored:
            text += "; read positions not restored as bans or history were lost: sources start as on a first run"
        return text


@dataclass(slots=True)
class Salvage:
    """Rows read back from a damaged database, already checked for type."""

    positions: list[Position] = field(default_factory=list)
    bans: list[BanRecord] = field(default_factory=list)
    history: dict[tuple[str, str], tuple[int, float]] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def complete(self, table: str) -> bool:
        """Whether every row of ``table`` was read and kept (an unopenable file makes every table incomplete)."""
        if self.skipped.get(table):
            return False
        return not any(p.startswith((f"{table}:", "*:")) for p in self.problems)

    def skip(self, table: str) -> None:
        """Count a row of ``table`` that was read but had values of the wrong type."""
        self.skipped[table] = self.skipped.get(table, 0) + 1


def quarantine(path: Path, when: float) -> tuple[Path, ...]:
    """Rename the database and its sidecars to ``<name>.corrupt-<UTC time>``; returns the new paths, database first.

    Sidecars go first: a WAL left beside a fresh database would be replayed into it. The quarantined
    database keeps its WAL under the matching name, so it can still be opened as the pair it was.
    """
    if not os.path.lexists(path):
        raise FileNotFoundError(errno.ENOENT, "the damaged database is gone", str(path))
    stamp = datetime.fromtimestamp(when, UTC).strftime("%Y%m%dT%H%M%SZ")
    base = path.with_name(f"{path.name}.corrupt-{stamp}")
    attempt = 1
    while any(os.path.lexists(f"{base}{suffix}") for suffix in ("", *SIDECARS)):
        attempt += 1
        base = path.with_name(f"{path.name}.corrupt-{stamp}-{attempt}")
    moved: list[Path] = []
    for suffix in (*SIDECARS, ""):
        source = Path(f"{path}{suffix}")
        if os.path.lexists(source):
            target = Path(f"{base}{suffix}")
            source.rename(target)
            moved.append(target)
    fsync_directory(path.parent)
    return tuple(reversed(moved))


def read_only_uri(path: Path) -> str:
    """An SQLite URI that opens ``path`` read-only (names with ``?`` or ``#`` included)."""
    return f"{path.resolve().as_uri()}?mode=ro"


def salvage(path: Path) -> Salvage:
    """Read what can be read from the damaged database at ``path``, opened read-only."""
    result = Salvage()
    try:
        conn = sqlite3.connect(read_only_uri(path), uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        result.problems.append(f"*: cannot open: {exc}")
        return result
    try:
        # A damaged schema may hold anything: run nothing it defines and check cells as they are read.
        # writable_schema lets SQLite read a file shorter than its header says (it refuses otherwise);
        # the connection is read-only, so nothing can be written through it.
        pragmas = ("query_only = ON", "trusted_schema = OFF", "cell_size_check = ON", "writable_schema = ON")
        for pragma in pragmas:
            conn.execute(f"PRAGMA {pragma}")
        _collect(conn, result)
    except sqlite3.Error as exc:
        result.problems.append(f"*: {exc}")
    finally:
        conn.close()
    return result


def _collect(conn: sqlite3.Connection, result: Salvage) -> None:
    """Read every table into ``result``, keeping rows whose values have the right types."""
    for row in _read_table(conn, "positions", result):
        position = _position(row)
        if position is None:
            result.skip("positions")
        else:
            result.positions.append(position)
    for row in _read_table(conn, "bans", result):
        ban = _ban(row)
        if ban is None:
            result.skip("bans")
        else:
            result.bans.append(ban)
    for row in _read_table(conn, "ban_history", result):
        entry = _history(row)
        if entry is None:
            result.skip("ban_history")
        else:
            result.history[entry[0]] = entry[1]


def _read_table(conn: sqlite3.Connection, table: str, result: Salvage) -> list[tuple[Any, ...]]:
    """Every readable row of ``table``, in rowid order; a read error is noted in ``result.problems``."""
    columns = ", ".join(TABLE_COLUMNS[table])
    # Table and column names come from TABLE_COLUMNS, never from the damaged file.
    forward = f"SELECT rowid, {columns} FROM {table} ORDER BY rowid"  # noqa: S608
    rows: dict[int, tuple[Any, ...]] = {}
    try:
        for rowid, *values in conn.execute(forward):
            rows[rowid] = tuple(values)
    except sqlite3.Error as exc:
        result.problems.append(f"{table}: {exc}")
        try:
            for rowid, *values in conn.execute(f"{forward} DESC"):
                if rowid in rows:
                    break
                rows[rowid] = tuple(values)
        except sqlite3.Error:
            pass  # the same damage from the other side; already noted
    return [rows[rowid] for rowid in sorted(rows)]


def _position(row: tuple[Any, ...]) -> Position | None:
    """A position row, or None when a value has the wrong type."""
    match row:
        case (str() as source, str() | None as identity, int() as offset, str() | None as cursor, _) if offset >= 0:
            return Position(source, identity, offset, cursor)
    return None


def _ban(row: tuple[Any, ...]) -> BanRecord | None:
    """A ban row, or None when a value has the wrong type; unreadable evidence is dropped, not the ban."""
    match row:
        case (
            str() as target,
            str() as rule,
            int() | float() as created,
            int() | float() as expires,
            int() as offence,
            str() as reason,
            str() as origin,
            evidence_text,
        ):
            try:
                evidence = decode_evidence(evidence_text) if isinstance(evidence_text, str) else ()
            except ValueError:
                evidence = ()  # the ban still protects the host without its evidence
            return BanRecord(target, rule, float(created), float(expires), offence, reason, origin, evidence)
    return None


def _history(row: tuple[Any, ...]) -> tuple[tuple[str, str], tuple[int, float]] | None:
    """A ban-history row as a mapping entry, or None when a value has the wrong type."""
    match row:
        case (str() as rule, str() as target, int() as offences, int() | float() as last_epoch):
            return (rule, target), (offences, float(last_epoch))
    return None
