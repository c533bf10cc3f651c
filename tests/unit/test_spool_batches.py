"""The spool's event batches: one row per loop batch, records built on read with the ids the loop would have
given them, cursors inside a batch, replays after a crash, bounds, and spools written before batches existed."""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion_guard.events import Event
from bastion_guard.parsing import LineParser
from bastion_guard.shipping.event_batches import decode_events, encode_events
from bastion_guard.shipping.records import Record, RecordKind, action_record, event_record, record_id
from bastion_guard.shipping.spool import Bounds, Policy, Spool, encode

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "real_sshd_rfc3339.log"


@pytest.fixture(scope="module")
def events() -> list[Event]:
    """Every event of the real sshd corpus (injection attempts, keys, certificates, PAM lines)."""
    parser = LineParser(CORPUS.stat().st_mtime)
    parsed = []
    with CORPUS.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            result = parser.parse(line.rstrip("\n"), f"file:{CORPUS}", number)
            if isinstance(result, Event):
                parsed.append(result)
    assert len(parsed) > 100
    return parsed


def audit(count: int, start: int = 0) -> list[Record]:
    """``count`` distinct non-event records."""
    return [action_record(RecordKind.AUDIT, 1000.0 + n, "bastion1", action="step", number=n)
            for n in range(start, start + count)]


def test_events_come_back_as_the_records_the_loop_used_to_build(tmp_path: Path, events: list[Event]) -> None:
    """Ids and bodies are exactly :func:`event_record`'s: Elasticsearch ``_id`` and GELF ``_event_id`` do not
    change with the stored form."""
    assert decode_events(encode_events("bastion1", events)) == ("bastion1", events)
    spool = Spool.open(tmp_path / "spool.db", ["es"])
    assert spool.append_batch(events, "bastion1") == len(events)
    assert spool.size()[0] == len(events)
    read = spool.read("es", 10 * len(events))
    assert [queued.record for queued in read] == [event_record(event, "bastion1") for event in events]
    assert [queued.seq for queued in read] == list(range(read[0].seq, read[0].seq + len(events)))


def test_a_batch_read_in_slices_leaves_when_its_last_record_is_done(tmp_path: Path, events: list[Event]) -> None:
    """The cursor may stop inside a batch: the rest still waits, then the whole row goes at once."""
    spool = Spool.open(tmp_path / "spool.db", ["es", "gelf"])
    spool.append_batch(events[:10], "bastion1")
    first = spool.read("es", 4)
    spool.complete("es", first[-1].seq)
    assert {entry.sink: entry.depth for entry in spool.backlog()} == {"es": 6, "gelf": 10}
    rest = spool.read("es", 100)
    assert [q.record for q in first + rest] == [event_record(e, "bastion1") for e in events[:10]]
    spool.complete("es", rest[-1].seq)
    assert spool.size()[0] == 10, "gelf has not finished the batch"
    gelf = spool.read("gelf", 100)
    spool.complete("gelf", gelf[-1].seq)
    assert spool.size() == (0, 0)


def test_events_and_records_are_read_in_append_order(tmp_path: Path, events: list[Event]) -> None:
    """A batch's decisions follow its events; what is appended later follows both."""
    spool = Spool.open(tmp_path / "spool.db", ["es"])
    decisions = audit(2)
    assert spool.append_batch(events[:3], "bastion1", decisions) == 5
    spool.append(audit(1, start=2))
    spool.append_batch(events[3:5], "bastion1")
    ids = [queued.record.id for queued in spool.read("es", 100)]
    expected = [event_record(e, "bastion1").id for e in events[:3]] + [r.id for r in audit(3)]
    expected += [event_record(e, "bastion1").id for e in events[3:5]]
    assert ids == expected
    assert len(spool.read("es", 100, max_bytes=1)) == 1


def test_a_replay_after_a_crash_adds_only_the_lines_not_waiting(tmp_path: Path, events: list[Event]) -> None:
    """The loop spooled a batch and died before committing its position: the lines read again are ignored,
    the new ones are spooled; the decisions of the replayed batch are recognised by id as before."""
    path = tmp_path / "spool.db"
    spool = Spool.open(path, ["es"])
    spool.append_batch(events[:20], "bastion1", audit(1))
    spool.close()
    again = Spool.open(path, ["es"])
    assert again.append_batch(events[:30], "bastion1", audit(1)) == 10
    ids = [queued.record.id for queued in again.read("es", 100)]
    assert len(ids) == len(set(ids)) == 31


def test_drop_oldest_drops_whole_batches_and_counts_per_sink(tmp_path: Path, events: list[Event]) -> None:
    """Full by record count: the oldest batch goes as a whole; only the part a sink had not finished counts."""
    spool = Spool.open(tmp_path / "spool.db", ["es", "gelf"], Bounds(max_bytes=0, max_records=15))
    drops: Counter[str] = Counter()
    spool.on_drop = lambda sink, count: drops.update({sink: count})
    spool.append_batch(events[:10], "bastion1")
    spool.complete("es", spool.read("es", 4)[-1].seq)
    spool.append_batch(events[10:20], "bastion1")
    assert spool.size()[0] == 10
    assert [q.record for q in spool.read("gelf", 100)] == [event_record(e, "bastion1") for e in events[10:20]]
    assert drops == {"es": 6, "gelf": 10}


def test_drop_newest_keeps_the_head_of_a_batch_that_does_not_fit(tmp_path: Path, events: list[Event]) -> None:
    """Under drop_newest what is spooled stays; of a new batch, what fits is kept and the rest counted."""
    spool = Spool.open(tmp_path / "spool.db", ["es"], Bounds(max_bytes=0, max_records=8,
                                                             policy=Policy.DROP_NEWEST))
    drops: Counter[str] = Counter()
    spool.on_drop = lambda sink, count: drops.update({sink: count})
    assert spool.append_batch(events[:5], "bastion1") == 5
    assert spool.append_batch(events[5:10], "bastion1") == 3
    assert drops == {"es": 2}
    assert [q.record for q in spool.read("es", 100)] == [event_record(e, "bastion1") for e in events[:8]]


_SPOOL_BEFORE_BATCHES = """
CREATE TABLE records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, kind TEXT NOT NULL, epoch REAL NOT NULL,
    body TEXT NOT NULL, bytes INTEGER NOT NULL, added REAL NOT NULL, only_sink TEXT
);
CREATE UNIQUE INDEX records_id ON records (id) WHERE only_sink IS NULL;
CREATE UNIQUE INDEX records_id_sink ON records (id, only_sink) WHERE only_sink IS NOT NULL;
CREATE TABLE cursors (sink TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE deadletters (
    number INTEGER PRIMARY KEY AUTOINCREMENT, sink TEXT NOT NULL, id TEXT NOT NULL, kind TEXT NOT NULL,
    epoch REAL NOT NULL, body TEXT NOT NULL, reason TEXT NOT NULL, rejected REAL NOT NULL, UNIQUE (sink, id)
);
CREATE TABLE totals (one INTEGER PRIMARY KEY CHECK (one = 1), records INTEGER NOT NULL, bytes INTEGER NOT NULL);
"""


def test_a_spool_written_before_batches_is_read_on(tmp_path: Path, events: list[Event]) -> None:
    """An older daemon's spool (one row per record, AUTOINCREMENT) opens as it is: its records keep their
    places and cursors, new ones are numbered after them."""
    path = tmp_path / "spool.db"
    old = audit(3)
    conn = sqlite3.connect(path)
    conn.executescript(_SPOOL_BEFORE_BATCHES)
    for record in old:
        body = encode(record)
        conn.execute("INSERT INTO records (id, kind, epoch, body, bytes, added) VALUES (?, ?, ?, ?, ?, ?)",
                     (record.id, record.kind.value, record.epoch, body, len(body), 1.0))
    conn.execute("INSERT INTO cursors VALUES ('es', 1)")
    conn.execute("INSERT INTO totals VALUES (1, 3, ?)", (sum(len(encode(r)) for r in old),))
    conn.commit()
    conn.close()
    spool = Spool.open(path, ["es"])
    spool.append_batch(events[:2], "bastion1")
    read = spool.read("es", 100)
    assert [q.record for q in read] == [*old[1:], *(event_record(e, "bastion1") for e in events[:2])]
    assert [q.seq for q in read] == [2, 3, 4, 5]
    spool.complete("es", read[-1].seq)
    assert spool.size() == (0, 0)


def test_record_ids_are_pinned() -> None:
    """Ids are the Elasticsearch ``_id`` of documents already shipped: a change of how they are computed would
    ship every replayed line again as a new document. This value was computed by the first implementation."""
    parts = ("event", "bastion1", "file:/var/log/auth.log", 1234, 1764360138.5,
             "Failed password for r\u00f6ot from 1.2.3.4 port 22 ssh2 \udcff")
    assert record_id(*parts) == "5c1a92af87c30dbb38b0bfaaa5731986"


def test_an_unreadable_batch_is_skipped_not_stalled_on(tmp_path: Path, events: list[Event]) -> None:
    """A batch the worker cannot decode (a damaged row, a newer format) is logged and passed over: the
    records after it are still delivered."""
    path = tmp_path / "spool.db"
    spool = Spool.open(path, ["es"])
    spool.append_batch(events[:3], "bastion1")
    spool.append_batch(events[3:5], "bastion1")
    spool.close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE batches SET body = ? WHERE first = (SELECT MIN(first) FROM batches)", (b"[99, 1]",))
    conn.commit()
    conn.close()
    spool = Spool.open(path, ["es"])
    read = spool.read("es", 100)
    assert [q.record for q in read] == [event_record(e, "bastion1") for e in events[3:5]]
    spool.complete("es", read[-1].seq)
    assert spool.size() == (0, 0)


def _one_by_one(sizes: list[tuple[int, int]], limit: int, max_bytes: int) -> list[int]:
    """The read's rule for ``(seq, stored size)`` items in place order, an item at a time (the model)."""
    taken: list[int] = []
    total = 0
    for seq, size in sizes:
        total += size
        if len(taken) >= limit or (max_bytes and total > max_bytes and taken):
            break
        taken.append(seq)
    return taken


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 2)), min_size=1, max_size=6),
       st.integers(1, 30), st.integers(0, 40_000), st.integers(0, 12))
def test_a_read_takes_runs_of_a_batch_as_it_would_take_them_one_by_one(
        tmp_path_factory: pytest.TempPathFactory, plan: list[tuple[int, int]], limit: int, max_bytes: int,
        done: int) -> None:
    """Batches of events with decisions between them, any limit and byte budget, the cursor anywhere: the
    read takes exactly what taking each item in order, at its stored size, would take."""
    events = _corpus_events()
    spool = Spool.open(tmp_path_factory.mktemp("spool") / "spool.db", ["es"])
    used = 0
    for batch_events, decisions in plan:
        spool.append_batch(events[used:used + batch_events], "bastion1", audit(decisions, start=used))
        used += batch_events
    everything = spool.read("es", 1000)
    if done and everything:
        spool.complete("es", everything[min(done, len(everything)) - 1].seq)
    cursor = everything[min(done, len(everything)) - 1].seq if done and everything else 0
    with sqlite3.connect(spool.path) as conn:
        sizes = conn.execute("SELECT seq, bytes FROM records").fetchall() + [
            (first + index, size // (last - first + 1))
            for first, last, size in conn.execute("SELECT first, last, bytes FROM batches")
            for index in range(last - first + 1)]
    waiting = sorted((seq, size) for seq, size in sizes if seq > cursor)
    assert [item.seq for item in spool.read("es", limit, max_bytes)] == _one_by_one(waiting, limit, max_bytes)
    spool.close()


_CORPUS_EVENTS: list[Event] = []


def _corpus_events() -> list[Event]:
    """The corpus's events, parsed once for the hypothesis test (a fixture cannot be shared with @given)."""
    if not _CORPUS_EVENTS:
        parser = LineParser(CORPUS.stat().st_mtime)
        with CORPUS.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                result = parser.parse(line.rstrip("\n"), f"file:{CORPUS}", number)
                if isinstance(result, Event):
                    _CORPUS_EVENTS.append(result)
    return _CORPUS_EVENTS


def test_a_batch_item_made_without_init_has_every_slot_of_one_made_with_it() -> None:
    """``Queued.of_batch`` skips ``__init__`` for speed; a slot added to one and not the other fails here."""
    from bastion_guard.shipping.spool import Queued  # noqa: PLC0415
    from bastion_guard.shipping.spooled_batch import SpooledBatch  # noqa: PLC0415

    batch = SpooledBatch(encode_events("bastion", []), "bastion", 0, events=[])
    fast, slow = Queued.of_batch(7, batch, 0), Queued(7, batch=batch, index=0)
    assert {name: getattr(fast, name) for name in Queued.__slots__} == {
        name: getattr(slow, name) for name in Queued.__slots__
    }
