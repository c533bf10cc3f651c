"""The spool: idempotent appends, per-sink cursors, bounds and their policies, dead letters, restarts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from bastion_guard.shipping.records import Record, RecordKind, action_record
from bastion_guard.shipping.spool import Bounds, Policy, Spool, SpoolError


def records(count: int, start: int = 0) -> list[Record]:
    """``count`` distinct records (ids depend on the number only)."""
    return [action_record(RecordKind.AUDIT, 1000.0 + n, "bastion1", action="step", number=n)
            for n in range(start, start + count)]


def drain(spool: Spool, sink: str) -> list[str]:
    """Everything waiting for ``sink``, marked finished; returns the ids in order."""
    batch = spool.read(sink, 10_000)
    if batch:
        spool.complete(sink, batch[-1].seq)
    return [queued.record.id for queued in batch]


def test_append_is_idempotent_on_the_record_id(tmp_path: Path) -> None:
    """A batch appended twice (a replay after a crash) is spooled once."""
    spool = Spool.open(tmp_path / "spool.db", ["es"])
    batch = records(5)
    assert spool.append(batch) == 5
    assert spool.append(batch) == 0
    assert spool.append([*records(2, start=4)]) == 1  # one old, one new
    assert [q.record for q in spool.read("es", 100)] == [*batch, *records(1, start=5)]
    assert spool.size()[0] == 6


def test_a_record_leaves_only_when_every_sink_is_done(tmp_path: Path) -> None:
    """Two sinks, two cursors: the slow sink keeps the records the fast one finished."""
    spool = Spool.open(tmp_path / "spool.db", ["es", "gelf"])
    spool.append(records(3))
    assert len(drain(spool, "es")) == 3
    assert spool.size()[0] == 3, "gelf has not finished them"
    backlog = {entry.sink: entry.depth for entry in spool.backlog()}
    assert backlog == {"es": 0, "gelf": 3}
    assert len(drain(spool, "gelf")) == 3
    assert spool.size() == (0, 0)
    assert drain(spool, "es") == []


def test_cursor_and_records_survive_a_restart(tmp_path: Path) -> None:
    """Close and reopen: what was waiting still waits, what was finished is not read again; file is 0600."""
    path = tmp_path / "state" / "spool.db"
    spool = Spool.open(path, ["es"])
    spool.append(records(4))
    first = spool.read("es", 2)
    spool.complete("es", first[-1].seq)
    spool.close()
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    again = Spool.open(path, ["es"])
    assert [q.record.id for q in again.read("es", 10)] == [r.id for r in records(4)[2:]]
    assert again.append(records(4)) == 2, "ids still waiting are ignored, finished ones are new again"


def test_drop_oldest_keeps_the_newest_and_counts_per_sink(tmp_path: Path) -> None:
    """Full by record count: the oldest go, each drop counted for each sink that had not finished it."""
    spool = Spool.open(tmp_path / "spool.db", ["es", "gelf"], Bounds(max_bytes=0, max_records=5))
    drops: Counter[str] = Counter()
    spool.on_drop = lambda sink, count: drops.update({sink: count})
    spool.append(records(3))
    drain(spool, "es")  # es finished the first three; gelf has not
    spool.append(records(4, start=3))
    assert spool.size()[0] == 5
    waiting = [q.record.body["number"] for q in spool.read("gelf", 100)]
    assert waiting == [2, 3, 4, 5, 6]
    assert drops == {"gelf": 2}, "es had finished the dropped records: no loss for es"


def test_drop_newest_refuses_new_records_and_counts_them(tmp_path: Path) -> None:
    """Full by bytes under drop_newest: what is spooled stays, the new records are dropped and counted."""
    one = len(records(1)[0].to_json())
    spool = Spool.open(tmp_path / "spool.db", ["es"], Bounds(max_bytes=one * 3 + 10, policy=Policy.DROP_NEWEST))
    drops: Counter[str] = Counter()
    spool.on_drop = lambda sink, count: drops.update({sink: count})
    assert spool.append(records(5)) == 3
    assert [q.record.body["number"] for q in spool.read("es", 100)] == [0, 1, 2]
    assert drops == {"es": 2}
    assert spool.append(records(3)) == 0
    assert drops == {"es": 2}, "a replay of records already waiting is no loss"


def test_dead_letters_are_kept_and_replayed_for_their_sink_only(tmp_path: Path) -> None:
    """A rejection is stored with its reason; replay re-queues it for that sink, not for the others."""
    spool = Spool.open(tmp_path / "spool.db", ["es", "gelf"])
    batch = records(3)
    spool.append(batch)
    queued = spool.read("es", 10)
    spool.complete("es", queued[-1].seq, rejected=[(batch[1], "400 mapper_parsing_exception: bad field")])
    drain(spool, "gelf")
    letters = spool.dead_letters()
    assert [(letter.sink, letter.record, letter.reason) for letter in letters] == [
        ("es", batch[1], "400 mapper_parsing_exception: bad field"),
    ]
    assert spool.size()[0] == 0
    assert spool.replay(sink="gelf") == 0
    assert spool.replay([letters[0].number]) == 1
    assert spool.dead_letters() == []
    assert drain(spool, "gelf") == []
    assert drain(spool, "es") == [batch[1].id]
    assert spool.size()[0] == 0


def test_a_sink_removed_from_the_configuration_holds_nothing_back(tmp_path: Path) -> None:
    """Reopening without a sink drops its cursor, so its backlog is collected."""
    path = tmp_path / "spool.db"
    spool = Spool.open(path, ["es", "old"])
    spool.append(records(3))
    drain(spool, "es")
    spool.close()
    spool = Spool.open(path, ["es"])
    assert spool.size()[0] == 0
    with pytest.raises(SpoolError, match="old"):
        spool.read("old", 1)


def test_a_damaged_spool_is_moved_aside_and_replaced(tmp_path: Path) -> None:
    """Garbage in spool.db must not stop the daemon: the file is kept aside and an empty spool opens."""
    path = tmp_path / "spool.db"
    path.write_bytes(b"this is not a database" * 100)
    spool = Spool.open(path, ["es"], clock=lambda: 1234.0)
    assert spool.append(records(2)) == 2
    assert (tmp_path / "spool.db.damaged-1234").read_bytes().startswith(b"this is not a database")


def test_read_stops_at_the_byte_budget(tmp_path: Path) -> None:
    """A batch stops before its stored size passes max_bytes, but always holds one record."""
    spool = Spool.open(tmp_path / "spool.db", ["es"])
    spool.append(records(10))
    one = spool.size()[1] // 10
    assert len(spool.read("es", 100, max_bytes=one * 3 + one // 2)) == 3
    assert len(spool.read("es", 100, max_bytes=1)) == 1
    assert len(spool.read("es", 5, max_bytes=10**9)) == 5
