"""The state store: round trips, atomic commits, private files, migrations, damaged files, a second reader."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import sqlite3
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bastion_guard.decisions import Decision, Evidence, Verdict
from bastion_guard.state import BanRecord, Position, Purged, StateError, StateStore, latest_version, migrations
from bastion_guard.state.migrations import Migration
from bastion_guard.state.recovery import is_damage

T0 = 1_795_899_600.0  # 2026-11-28T21:00:00Z


class Clock:
    """A settable clock for ``StateStore.open(clock=...)``."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def ban(target: str, expires: float, rule: str = "brute", offence: int = 1, evidence_lines: int = 1) -> BanRecord:
    """A ban record created at T0 with ``evidence_lines`` lines of evidence."""
    evidence = tuple((T0 - i, "auth", 1000 + i) for i in range(evidence_lines))
    return BanRecord(target, rule, T0, expires, offence, f"{rule} from {target}", "local", evidence)


def raw(path: Path) -> sqlite3.Connection:
    """A plain second connection to the database, outside the store."""
    return sqlite3.connect(path, isolation_level=None)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Where the state database goes: a not yet existing directory inside tmp_path."""
    return tmp_path / "state" / "state.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[StateStore]:
    """A fresh store with a fixed clock, closed afterwards."""
    with StateStore.open(db_path, clock=Clock()) as opened:
        yield opened


# --------------------------------------------------------------------------------------------- round trips


def test_positions_round_trip(store: StateStore) -> None:
    """Positions come back as saved, and a later commit replaces a source's position."""
    store.commit([Position("auth.log", "2049:131:ab12", 4096, None), Position("journal", None, 0, "s=1;i=2")])
    store.commit([Position("auth.log", "2049:131:ab12", 8192, None)])
    assert store.positions() == {
        "auth.log": Position("auth.log", "2049:131:ab12", 8192, None),
        "journal": Position("journal", None, 0, "s=1;i=2"),
    }


def test_bans_round_trip_with_evidence(store: StateStore) -> None:
    """A ban, with its evidence, reads back equal from ban() and active_bans()."""
    record = ban("203.0.113.7", T0 + 600, evidence_lines=3)
    store.commit(bans=[record])
    assert store.ban("203.0.113.7") == record
    assert store.active_bans(T0) == [record]
    assert store.ban("198.51.100.1") is None


def test_history_round_trip_sets_counts(store: StateStore) -> None:
    """History entries are set to the given (count, last epoch), not added to."""
    store.commit(history={("brute", "203.0.113.7"): (1, T0), ("enum", "2001:db8::/64"): (2, T0 + 5)})
    store.commit(history={("brute", "203.0.113.7"): (3, T0 + 60)})
    assert store.history() == {("brute", "203.0.113.7"): (3, T0 + 60), ("enum", "2001:db8::/64"): (2, T0 + 5)}


def test_counts_stay_until_a_position_moves_past_them(db_path: Path) -> None:
    """Counts go in with the positions they belong to; the next start reads them and they stay valid (a start
    that fails reads them again) until the commit that moves a position forgets them, in that transaction."""
    with StateStore.open(db_path) as first:
        first.commit([Position("auth.log", "id", 10, None)], counts=b'{"counts": 1}')
        first.commit(counts=b'{"counts": 2}')  # a later clean stop with nothing else pending replaces them
    with StateStore.open(db_path) as second:
        assert second.saved_counts() == b'{"counts": 2}'
    with StateStore.open(db_path) as third:
        assert third.saved_counts() == b'{"counts": 2}'
        third.commit([Position("auth.log", "id", 20, None)], forget_counts=True)
        assert third.saved_counts() is None
        assert third.positions()["auth.log"].offset == 20


def test_state_survives_reopen(db_path: Path) -> None:
    """What one store committed, a store opened later on the same file reads."""
    with StateStore.open(db_path) as first:
        first.commit(
            [Position("auth.log", "id", 10, None)], [ban("203.0.113.7", T0 + 60)], (), {("brute", "x"): (1, T0)}
        )
    with StateStore.open(db_path) as second:
        assert second.recovery is None
        assert second.positions()["auth.log"].offset == 10
        assert second.ban("203.0.113.7") == ban("203.0.113.7", T0 + 60)
        assert second.history() == {("brute", "x"): (1, T0)}


def test_from_decision_copies_a_ban() -> None:
    """A ban decision becomes a record with its expiry and evidence as plain tuples."""
    decision = Decision(
        verdict=Verdict.BAN,
        rule="brute",
        target="203.0.113.7",
        epoch=T0,
        duration_secs=600.0,
        count=5,
        offence=2,
        reason="5 failures in 60s",
        evidence=(Evidence(T0 - 10, "auth.log", 100), Evidence(T0, "auth.log", 200)),
        user="root",
        origin="peer-a",
    )
    evidence = ((T0 - 10, "auth.log", 100), (T0, "auth.log", 200))
    expected = BanRecord("203.0.113.7", "brute", T0, T0 + 600, 2, "5 failures in 60s", "peer-a", evidence)
    assert BanRecord.from_decision(decision) == expected


def test_from_decision_refuses_an_alert() -> None:
    """Alerts are not bans, so they are not stored as ban records."""
    alert = Decision(Verdict.ALERT, "sudo", "alice", T0, None, 1, 1, "sudo failure", ())
    with pytest.raises(ValueError, match="alert"):
        BanRecord.from_decision(alert)


def test_ban_keeps_the_later_expiry(store: StateStore) -> None:
    """A second ban of a banned target replaces it only if it ends later, in either order."""
    long, short = ban("203.0.113.7", T0 + 3600, rule="recidive", offence=3), ban("203.0.113.7", T0 + 60)
    store.commit(bans=[long])
    store.commit(bans=[short])
    assert store.ban("203.0.113.7") == long
    store.commit(unbans=["203.0.113.7"])
    store.commit(bans=[short, long])
    assert store.ban("203.0.113.7") == long


def test_unban_before_ban_in_one_commit(store: StateStore) -> None:
    """Unbans apply before bans, so a target unbanned and banned again in one batch stays banned."""
    store.commit(bans=[ban("203.0.113.7", T0 + 60), ban("203.0.113.8", T0 + 60)])
    store.commit(bans=[ban("203.0.113.7", T0 + 30)], unbans=["203.0.113.7", "203.0.113.8"])
    assert store.ban("203.0.113.7") == ban("203.0.113.7", T0 + 30)
    assert store.ban("203.0.113.8") is None


def test_unbans_must_not_be_a_single_string(store: StateStore) -> None:
    """A bare string would be read as one-character targets, so it is refused."""
    with pytest.raises(TypeError):
        store.commit(unbans="203.0.113.7")


def test_active_bans_only_those_ending_after_now(store: StateStore) -> None:
    """active_bans(now) returns bans with expires > now, soonest first."""
    store.commit(bans=[ban("c", T0 + 300), ban("a", T0 + 100), ban("b", T0 + 200)])
    assert [b.target for b in store.active_bans(T0 + 100)] == ["b", "c"]
    assert store.active_bans(T0 + 300) == []


def test_purge_deletes_expired_bans_and_old_history(store: StateStore) -> None:
    """purge() drops ended bans and history older than the given age, and keeps the rest."""
    store.commit(
        bans=[ban("old", T0 + 10), ban("new", T0 + 1000)],
        history={("brute", "old"): (1, T0 - 90_000), ("brute", "new"): (1, T0)},
    )
    assert store.purge(T0 + 10, history_older_than_secs=86_400) == Purged(bans=1, history=1)
    assert [b.target for b in store.active_bans(0)] == ["new"]
    assert store.history() == {("brute", "new"): (1, T0)}


# --------------------------------------------------------------------------------------------- atomicity


def test_failure_inside_commit_leaves_nothing(store: StateStore, db_path: Path) -> None:
    """A ban insert that fails after positions and unbans were written rolls all of them back."""
    store.commit([Position("auth.log", "id", 100, None)], [ban("203.0.113.7", T0 + 60)], (), {("brute", "a"): (1, T0)})
    before = (store.positions(), store.active_bans(0), store.history())
    with raw(db_path) as other:
        other.execute("CREATE TRIGGER fail_bans BEFORE INSERT ON bans BEGIN SELECT RAISE(ABORT, 'injected'); END")
    with pytest.raises(StateError, match="injected"):
        store.commit(
            [Position("auth.log", "id", 200, None), Position("journal", None, 0, "c")],
            [ban("198.51.100.1", T0 + 60)],
            ["203.0.113.7"],
            {("brute", "a"): (2, T0 + 1)},
        )
    assert (store.positions(), store.active_bans(0), store.history()) == before
    with raw(db_path) as other:
        other.execute("DROP TRIGGER fail_bans")
    store.commit([Position("auth.log", "id", 200, None)], [ban("198.51.100.1", T0 + 60)])
    assert store.positions()["auth.log"].offset == 200


def test_failing_row_in_the_middle_leaves_nothing(store: StateStore) -> None:
    """A row rejected by a constraint mid-batch undoes the rows of the batch before it."""
    with pytest.raises(StateError, match="CHECK constraint"):
        store.commit([Position("a", None, 1, None), Position("b", None, -1, None)], [ban("x", T0 + 60)])
    assert store.positions() == {}
    assert store.ban("x") is None


def test_bad_evidence_fails_before_the_transaction(store: StateStore) -> None:
    """Evidence that cannot be stored (NaN) is refused before anything is written."""
    bad = BanRecord("x", "brute", T0, T0 + 60, 1, "r", "local", ((float("nan"), "auth", 1),))
    with pytest.raises(ValueError, match="JSON"):
        store.commit([Position("a", None, 1, None)], [bad])
    assert store.positions() == {}


# --------------------------------------------------------------------------------------------- files


def test_files_are_private_whatever_the_umask(db_path: Path) -> None:
    """Under umask 000 the directory is 0700 and the database, -wal and -shm are 0600."""
    old = os.umask(0)
    try:
        with StateStore.open(db_path) as opened:
            opened.commit([Position("a", None, 1, None)])
            assert stat.S_IMODE(db_path.parent.stat().st_mode) == 0o700
            for name in ("state.db", "state.db-wal", "state.db-shm"):
                assert stat.S_IMODE((db_path.parent / name).stat().st_mode) == 0o600, name
    finally:
        os.umask(old)


def test_loose_existing_file_is_tightened(db_path: Path) -> None:
    """A database left world-readable by an old install is made 0600 on open."""
    with StateStore.open(db_path):
        pass
    db_path.chmod(0o644)
    with StateStore.open(db_path):
        assert stat.S_IMODE(db_path.stat().st_mode) == 0o600


def test_wal_and_full_sync(store: StateStore, db_path: Path) -> None:
    """The database is in WAL mode and the store's connection syncs fully on commit."""
    with raw(db_path) as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn = store._conn
    assert conn is not None
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_parent_that_is_a_file_is_a_state_error(tmp_path: Path) -> None:
    """When the directory cannot be made, the error names it and says why."""
    (tmp_path / "blocker").write_text("")
    with pytest.raises(StateError, match=r"blocker.*not a directory"):
        StateStore.open(tmp_path / "blocker" / "state.db")


def test_directory_at_the_database_path_is_a_state_error(db_path: Path) -> None:
    """A directory where the database should be is reported with its path, not quarantined."""
    db_path.mkdir(parents=True)
    with pytest.raises(StateError, match=r"cannot create state database .*state\.db: Is a directory"):
        StateStore.open(db_path)
    assert db_path.is_dir()


def test_closed_store_raises_state_error(db_path: Path) -> None:
    """Using a closed store is a StateError naming the file, and closing twice is fine."""
    opened = StateStore.open(db_path)
    opened.close()
    opened.close()
    with pytest.raises(StateError, match=r"state\.db is closed"):
        opened.positions()


# --------------------------------------------------------------------------------------------- migrations

# Version 1 of the schema as released: a database written by that release, made here by hand.
V1_SCHEMA = """
CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied REAL NOT NULL, description TEXT NOT NULL);
INSERT INTO schema_version VALUES (1, 1795899000.0, 'positions, bans and ban history');
CREATE TABLE positions (source TEXT PRIMARY KEY NOT NULL, identity TEXT,
    offset INTEGER NOT NULL CHECK (offset >= 0), cursor TEXT, updated REAL NOT NULL);
CREATE TABLE bans (target TEXT PRIMARY KEY NOT NULL, rule TEXT NOT NULL, created REAL NOT NULL,
    expires REAL NOT NULL, offence INTEGER NOT NULL, reason TEXT NOT NULL, origin TEXT NOT NULL,
    evidence TEXT NOT NULL);
CREATE INDEX bans_by_expiry ON bans (expires);
CREATE TABLE ban_history (rule TEXT NOT NULL, target TEXT NOT NULL, offences INTEGER NOT NULL,
    last_epoch REAL NOT NULL, PRIMARY KEY (rule, target));
CREATE INDEX ban_history_by_age ON ban_history (last_epoch);
INSERT INTO positions VALUES ('auth.log', '2049:131:ab12', 4096, NULL, 1795899000.0);
INSERT INTO bans VALUES ('203.0.113.7', 'brute', 1795899600.0, 1795900200.0, 2, 'five failures', 'local',
    '[[1795899590.0,"auth.log",4000]]');
INSERT INTO ban_history VALUES ('brute', '203.0.113.7', 2, 1795899600.0);
"""


def make_v1(path: Path) -> None:
    """Write a version 1 database with one row in each table."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with raw(path) as conn:
        conn.executescript(V1_SCHEMA)
    conn.close()


def version_of(path: Path) -> int:
    """The highest version recorded in schema_version."""
    with raw(path) as conn:
        return int(conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0])


def test_v1_database_opens_at_the_current_version(db_path: Path) -> None:
    """A hand-made version 1 database is migrated to the current version with its rows intact."""
    make_v1(db_path)
    with StateStore.open(db_path) as opened:
        assert opened.recovery is None
        assert opened.positions() == {"auth.log": Position("auth.log", "2049:131:ab12", 4096, None)}
        assert opened.ban("203.0.113.7") == BanRecord(
            "203.0.113.7", "brute", T0, T0 + 600, 2, "five failures", "local", ((T0 - 10, "auth.log", 4000),)
        )
        assert opened.history() == {("brute", "203.0.113.7"): (2, T0)}
    assert version_of(db_path) == latest_version()


def _add_note_column(conn: sqlite3.Connection) -> None:
    """Test migration 2: a new column, filled from existing data."""
    conn.execute("ALTER TABLE bans ADD COLUMN note TEXT")
    conn.execute("UPDATE bans SET note = 'from v1: ' || reason")


def test_a_later_migration_is_applied_once(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A migration 2 added to the list runs on a v1 database, is recorded, and does not run again."""
    make_v1(db_path)
    following = latest_version() + 1
    step = Migration(following, "ban notes", _add_note_column)
    monkeypatch.setattr(migrations, "MIGRATIONS", (*migrations.MIGRATIONS, step))
    with StateStore.open(db_path) as opened:
        assert opened.ban("203.0.113.7") is not None
    assert version_of(db_path) == following
    with StateStore.open(db_path):
        pass  # a second ALTER TABLE would fail: the migration must not run twice
    with raw(db_path) as conn:
        assert conn.execute("SELECT note FROM bans").fetchall() == [("from v1: five failures",)]


def _half_then_fail(conn: sqlite3.Connection) -> None:
    """Test migration 2 that fails after changing the schema."""
    conn.execute("CREATE TABLE half_done (x INTEGER)")
    conn.execute("INSERT INTO no_such_table VALUES (1)")


def test_failed_migration_rolls_back(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A migration that fails leaves the database at its old version, unchanged and not quarantined."""
    make_v1(db_path)
    current = latest_version()
    following = current + 1
    monkeypatch.setattr(migrations, "MIGRATIONS", (*migrations.MIGRATIONS, Migration(following, "broken", _half_then_fail)))
    with pytest.raises(StateError, match=rf"state\.db.*no_such_table.*schema version {following}"):
        StateStore.open(db_path)
    assert version_of(db_path) == current
    with raw(db_path) as conn:
        assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'half_done'").fetchall() == []
    assert sorted(p.name for p in db_path.parent.iterdir() if "corrupt" in p.name) == []


def test_newer_schema_is_refused_untouched(db_path: Path) -> None:
    """A database from a newer bastion-guard is an error, not damage: it is neither changed nor moved."""
    make_v1(db_path)
    with raw(db_path) as conn:
        conn.execute("INSERT INTO schema_version VALUES (99, 0, 'future')")
    before = db_path.read_bytes()
    with pytest.raises(StateError, match=r"state\.db.*version 99 is newer"):
        StateStore.open(db_path)
    assert db_path.read_bytes() == before
    assert [p.name for p in db_path.parent.iterdir() if "corrupt" in p.name] == []


def test_foreign_database_is_refused(db_path: Path) -> None:
    """A healthy SQLite file with someone else's tables is a StateError, not quarantined."""
    db_path.parent.mkdir(parents=True)
    with raw(db_path) as conn:
        conn.execute("CREATE TABLE positions (x INTEGER)")
    with pytest.raises(StateError, match=r"state\.db.*already exists"):
        StateStore.open(db_path)
    assert db_path.exists()


# --------------------------------------------------------------------------------------------- damage

N_BANS = 600


def fill(path: Path) -> tuple[dict[str, Position], dict[str, BanRecord], dict[tuple[str, str], tuple[int, float]]]:
    """A closed database with 2 positions, N_BANS bans over many pages and some history; returns what it holds."""
    positions = {"auth.log": Position("auth.log", "id", 4096, None), "journal": Position("journal", None, 0, "c=1")}
    targets = [f"10.0.{i // 256}.{i % 256}" for i in range(N_BANS)]
    bans = {target: ban(target, T0 + i, evidence_lines=5) for i, target in enumerate(targets)}
    history = {("brute", f"10.0.0.{i}"): (i, T0 + i) for i in range(20)}
    with StateStore.open(path) as opened:
        opened.commit(list(positions.values()), list(bans.values()), (), history)
    assert not Path(f"{path}-wal").exists()  # closing checkpointed everything into the main file
    return positions, bans, history


def leaf_pages(data: bytes, page: int, page_size: int) -> list[int]:
    """The leaf pages of the b-tree rooted at ``page``, left to right (file format: sqlite.org/fileformat.html)."""
    start = (page - 1) * page_size
    header = start + (100 if page == 1 else 0)
    kind = data[header]
    if kind in (0x0A, 0x0D):  # index leaf, table leaf
        return [page]
    cells = int.from_bytes(data[header + 3 : header + 5], "big")
    children = []
    for i in range(cells):
        offset = int.from_bytes(data[header + 12 + 2 * i : header + 14 + 2 * i], "big")
        children.append(int.from_bytes(data[start + offset : start + offset + 4], "big"))
    children.append(int.from_bytes(data[header + 8 : header + 12], "big"))
    return [leaf for child in children for leaf in leaf_pages(data, child, page_size)]


def garble_leaf(path: Path, btree: str) -> None:
    """Overwrite a middle leaf page of the named table or index with random bytes."""
    with raw(path) as conn:
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (btree,)).fetchone()[0]
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    data = bytearray(path.read_bytes())
    leaves = leaf_pages(bytes(data), root, page_size)
    assert len(leaves) >= 3, f"{btree} needs several leaf pages for this test"
    victim = leaves[len(leaves) // 2]
    data[(victim - 1) * page_size : victim * page_size] = os.urandom(page_size)
    path.write_bytes(bytes(data))


def quarantined(path: Path) -> list[Path]:
    """The quarantined databases beside ``path`` (not their sidecars)."""
    pattern = re.compile(re.escape(path.name) + r"\.corrupt-\d{8}T\d{6}Z(-\d+)?")
    return sorted(p for p in path.parent.iterdir() if pattern.fullmatch(p.name))


def assert_fresh_store_works(store: StateStore) -> None:
    """The replacement database accepts and returns a commit."""
    store.commit([Position("new", None, 1, None)], [ban("192.0.2.1", T0 + 60)])
    assert store.positions()["new"].offset == 1
    assert store.ban("192.0.2.1") is not None


def test_random_bytes_are_quarantined(db_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A file of random bytes is moved aside under a UTC-stamped name, logged, and replaced by a working store."""
    db_path.parent.mkdir(parents=True)
    garbage = os.urandom(16384)
    db_path.write_bytes(garbage)
    with (
        caplog.at_level(logging.WARNING, logger="bastion_guard.state"),
        StateStore.open(db_path, clock=Clock(0.0)) as opened,
    ):
        report = opened.recovery
        assert report is not None
        assert report.quarantined == (db_path.with_name("state.db.corrupt-19700101T000000Z"),)
        assert report.quarantined[0].read_bytes() == garbage
        assert report.recovered == {"positions": 0, "bans": 0, "ban_history": 0}
        assert "not a database" in report.reason
        assert_fresh_store_works(opened)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(str(db_path) in m and "damaged" in m for m in errors)


@pytest.mark.parametrize(
    ("code", "damage"),
    [
        (sqlite3.SQLITE_CORRUPT, True),
        (sqlite3.SQLITE_CORRUPT_INDEX, True),
        (sqlite3.SQLITE_NOTADB, True),
        (sqlite3.SQLITE_IOERR_READ, True),
        (sqlite3.SQLITE_IOERR_SHORT_READ, True),
        (sqlite3.SQLITE_IOERR_WRITE, False),
        (sqlite3.SQLITE_FULL, False),
        (sqlite3.SQLITE_BUSY, False),
        (sqlite3.SQLITE_CANTOPEN, False),
        (sqlite3.SQLITE_READONLY, False),
    ],
)
def test_only_damage_leads_to_quarantine(code: int, damage: bool) -> None:
    """Corrupt, not-a-database and read errors mean damage; busy, full, write and permission errors do not."""
    error = sqlite3.DatabaseError("test")
    error.sqlite_errorcode = code
    assert is_damage(error) is damage


def test_report_says_what_happened(db_path: Path) -> None:
    """The recovery report names the file, the cause, the quarantined copy and what was recovered."""
    fill(db_path)
    garble_leaf(db_path, "bans")
    with StateStore.open(db_path, clock=Clock(0.0)) as opened:
        assert opened.recovery is not None
        text = opened.recovery.describe()
    assert str(db_path) in text
    assert "state.db.corrupt-19700101T000000Z" in text
    assert "20 ban_history" in text
    assert "positions not restored" in text


def test_second_quarantine_in_the_same_second_keeps_both(db_path: Path) -> None:
    """Two damaged files found at the same time get distinct names; neither is overwritten."""
    db_path.parent.mkdir(parents=True)
    for content in (b"first" * 1000, b"second" * 1000):
        db_path.write_bytes(content)
        StateStore.open(db_path, clock=Clock(0.0)).close()
    names = sorted(p.name for p in quarantined(db_path))
    assert names == ["state.db.corrupt-19700101T000000Z", "state.db.corrupt-19700101T000000Z-2"]


def test_sidecars_move_with_the_damaged_file(db_path: Path) -> None:
    """A damaged database's -wal and -shm are moved with it under matching names, never left for the new one."""
    db_path.parent.mkdir(parents=True)
    db_path.write_bytes(os.urandom(8192))
    Path(f"{db_path}-wal").write_bytes(b"old wal")
    Path(f"{db_path}-shm").write_bytes(b"old shm")
    with StateStore.open(db_path, clock=Clock(0.0)) as opened:
        assert opened.recovery is not None
        base = "state.db.corrupt-19700101T000000Z"
        assert sorted(p.name for p in opened.recovery.quarantined) == [base, f"{base}-shm", f"{base}-wal"]
        assert (db_path.parent / f"{base}-wal").read_bytes() == b"old wal"
        assert_fresh_store_works(opened)


def test_truncated_database_keeps_what_was_before_the_cut(db_path: Path) -> None:
    """A database cut short is quarantined whole; rows before the cut are recovered unchanged."""
    _, bans, history = fill(db_path)
    data = db_path.read_bytes()
    db_path.write_bytes(data[: len(data) * 6 // 10])
    with StateStore.open(db_path) as opened:
        report = opened.recovery
        assert report is not None
        assert report.quarantined[0].stat().st_size == len(data) * 6 // 10
        recovered = {b.target: b for b in opened.active_bans(0)}
        assert 0 < len(recovered) < N_BANS
        # A row cut inside its evidence keeps the ban without the evidence (recovery._ban): where the cut
        # falls depends on the page layout, so allow exactly that and nothing else.
        assert all(
            record == bans[target]
            or (record.evidence == () and dataclasses.replace(record, evidence=bans[target].evidence) == bans[target])
            for target, record in recovered.items()
        )
        assert opened.history().items() <= history.items()
        assert not report.positions_restored
        assert opened.positions() == {}
        assert_fresh_store_works(opened)


def test_garbage_page_loses_only_that_page(db_path: Path) -> None:
    """A garbage leaf page in the bans table costs the bans on it; positions are dropped so lines are re-read."""
    _, bans, history = fill(db_path)
    garble_leaf(db_path, "bans")
    with StateStore.open(db_path) as opened:
        report = opened.recovery
        assert report is not None
        assert report.quarantined[0].exists()
        recovered = {b.target: b for b in opened.active_bans(0)}
        assert N_BANS - 40 < len(recovered) < N_BANS  # a 4 KiB page holds far fewer than 40 of these rows
        assert all(bans[target] == record for target, record in recovered.items())
        # Bans before and after the bad page: the salvage reads from both ends.
        assert "10.0.0.0" in recovered
        assert f"10.0.{(N_BANS - 1) // 256}.{(N_BANS - 1) % 256}" in recovered
        assert opened.history() == history
        assert not report.positions_restored
        assert opened.positions() == {}
        assert "bans" in " ".join(report.problems)
        assert_fresh_store_works(opened)


def test_garbage_index_page_loses_nothing(db_path: Path) -> None:
    """Damage only in an index fails the check, but every row is recovered and positions are kept."""
    positions, bans, history = fill(db_path)
    garble_leaf(db_path, "sqlite_autoindex_bans_1")
    with StateStore.open(db_path) as opened:
        report = opened.recovery
        assert report is not None
        assert report.positions_restored
        assert opened.positions() == positions
        assert {b.target: b for b in opened.active_bans(0)} == bans
        assert opened.history() == history


def test_healthy_database_with_garbage_wal_is_kept(db_path: Path) -> None:
    """A -wal of random bytes is not damage (SQLite ignores frames that fail their checksum): nothing is moved."""
    positions, bans, _ = fill(db_path)
    Path(f"{db_path}-wal").write_bytes(os.urandom(8192))
    with StateStore.open(db_path) as opened:
        assert opened.recovery is None
        assert opened.positions() == positions
        assert {b.target: b for b in opened.active_bans(0)} == bans


# --------------------------------------------------------------------------------------------- concurrency


def test_second_store_sees_committed_state(store: StateStore, db_path: Path) -> None:
    """Another store on the same file sees each commit as soon as it returns."""
    with StateStore.open(db_path) as reader:
        assert reader.positions() == {}
        store.commit([Position("auth.log", "id", 10, None)], [ban("203.0.113.7", T0 + 60)])
        assert reader.positions()["auth.log"].offset == 10
        assert reader.ban("203.0.113.7") is not None


def test_open_read_snapshot_does_not_block_commit(store: StateStore, db_path: Path) -> None:
    """In WAL a reader inside a transaction keeps its snapshot and does not block the writer."""
    store.commit([Position("auth.log", "id", 10, None)])
    reader = raw(db_path)
    try:
        reader.execute("BEGIN")
        assert reader.execute("SELECT offset FROM positions").fetchall() == [(10,)]
        store.commit([Position("auth.log", "id", 20, None)])
        assert reader.execute("SELECT offset FROM positions").fetchall() == [(10,)]
        reader.execute("COMMIT")
        assert reader.execute("SELECT offset FROM positions").fetchall() == [(20,)]
    finally:
        reader.close()


def test_threads_share_one_store(store: StateStore) -> None:
    """Commits from several threads through one store all land."""

    def work(n: int) -> None:
        for i in range(25):
            store.commit([Position(f"source-{n}", None, i, None)], [ban(f"10.{n}.0.{i}", T0 + 60)])

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {s: p.offset for s, p in store.positions().items()} == {f"source-{n}": 24 for n in range(4)}
    assert len(store.active_bans(0)) == 100
