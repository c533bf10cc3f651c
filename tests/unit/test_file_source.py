"""FileFollower: appends, partial and over-long lines, resuming, rotation, truncation and deletion.

Every behaviour runs twice: woken by inotify on the directory, and by polling ``stat``.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bastion_guard.errors import SourceError
from bastion_guard.sources import Batch, FileFollower, FilePosition
from bastion_guard.sources import file as file_source
from bastion_guard.sources.identity import PREFIX_BYTES, FileIdentity

Follow = Callable[..., FileFollower]


@pytest.fixture(params=[True, False], ids=["inotify", "polling"])
def follow(request: pytest.FixtureRequest) -> Iterator[Follow]:
    """Make followers woken by inotify or by polling, closed after the test."""
    made: list[FileFollower] = []

    def make(path: Path, start: FilePosition | None = None, **options: object) -> FileFollower:
        follower = FileFollower(path, start, use_inotify=request.param, poll_interval=0.02, **options)  # type: ignore[arg-type]
        assert follower.uses_inotify is request.param
        made.append(follower)
        return follower

    yield make
    for follower in made:
        follower.close()


@pytest.fixture
def log(tmp_path: Path) -> Path:
    """The followed path, in a directory of its own."""
    return tmp_path / "auth.log"


def append(path: Path, data: str | bytes) -> None:
    """Append like a syslog daemon that opens, writes and closes."""
    with path.open("ab") as stream:
        stream.write(data.encode() if isinstance(data, str) else data)


def numbered(prefix: str, count: int) -> str:
    """``count`` lines ``prefix-1`` .. ``prefix-count``, each long enough to make a full identity quickly."""
    return "".join(f"{prefix}-{n} {'x' * 60}\n" for n in range(1, count + 1))


def texts(batch: Batch | None) -> list[str]:
    """The short names of a batch's lines (up to the first space)."""
    return [] if batch is None else [line.text.split(" ")[0] for line in batch.lines]


def drain(follower: FileFollower, max_lines: int = 10_000) -> tuple[list[str], FilePosition | None]:
    """Everything available now, and the position after it (None if nothing came)."""
    names: list[str] = []
    position = None
    while (batch := follower.read_available(max_lines)) is not None:
        names += texts(batch)
        position = batch.position
    return names, position


def collect(follower: FileFollower, count: int, timeout: float = 5.0) -> list[str]:
    """Read and wait until ``count`` lines came, the way the daemon loops."""
    names: list[str] = []
    deadline = time.monotonic() + timeout
    while len(names) < count and time.monotonic() < deadline:
        batch = follower.read_available()
        if batch is None:
            follower.wait(0.5)
        names += texts(batch)
    return names


def test_reads_existing_then_appended_lines(follow: Follow, log: Path) -> None:
    """Lines already in the file come first, then lines appended later, woken by wait()."""
    append(log, "a\nb\n")
    follower = follow(log)
    assert drain(follower)[0] == ["a", "b"]
    writer = threading.Timer(0.1, append, (log, "c\nd\n"))
    writer.start()
    assert collect(follower, 2) == ["c", "d"]
    writer.join()


def test_offsets_numbers_and_decoding(follow: Follow, log: Path) -> None:
    """Offsets are byte offsets of line starts, numbers count lines, CR is dropped and bad UTF-8 escaped."""
    append(log, b"\xc3\xa9t\xc3\xa9\r\nbad \xff\n\nend\n")
    batch = follow(log).read_available()
    assert batch is not None
    assert [(line.number, line.offset, line.text) for line in batch.lines] == [
        (1, 0, "été"), (2, 7, "bad \\xff"), (3, 13, ""), (4, 14, "end")
    ]
    assert batch.position.offset == 18
    assert batch.source == str(log)


def test_partial_line_waits_for_its_newline(follow: Follow, log: Path) -> None:
    """A last line without a newline is held back, then delivered whole once completed."""
    append(log, "one\ntw")
    follower = follow(log)
    batch = follower.read_available()
    assert texts(batch) == ["one"]
    assert batch is not None
    assert batch.position.offset == 4
    assert follower.read_available() is None
    append(log, "o\n")
    assert collect(follower, 1) == ["two"]


def test_max_lines_splits_batches(follow: Follow, log: Path) -> None:
    """A batch holds at most max_lines lines and its position is just after its last line."""
    append(log, "a\nb\nc\n")
    follower = follow(log)
    first = follower.read_available(max_lines=2)
    assert texts(first) == ["a", "b"]
    assert first is not None
    assert first.position.offset == 4
    assert texts(follower.read_available(max_lines=2)) == ["c"]


@pytest.mark.parametrize("long_bytes", [150, 300_000], ids=["within-a-chunk", "many-chunks"])
def test_long_lines_are_counted_and_skipped(follow: Follow, log: Path, long_bytes: int) -> None:
    """A line over max_line_bytes is skipped and counted; the lines around it arrive intact."""
    append(log, "short\n" + "L" * long_bytes + "\nafter\n")
    follower = follow(log, max_line_bytes=100)
    names, skipped = [], 0
    while (batch := follower.read_available()) is not None:
        names += texts(batch)
        skipped += batch.skipped_long
    assert names == ["short", "after"]
    assert skipped == 1


def test_long_line_written_in_pieces_is_not_buffered(follow: Follow, log: Path) -> None:
    """An over-long line still being written is discarded as it comes and counted once when it ends."""
    append(log, "a\n" + "L" * 5000)
    follower = follow(log, max_line_bytes=100)
    assert texts(follower.read_available()) == ["a"]
    assert follower.read_available() is None
    append(log, "L" * 5000)
    assert follower.read_available() is None
    assert len(follower._reader._buffer) <= 100 + file_source.CHUNK_BYTES  # type: ignore[union-attr]
    append(log, "\nb\n")
    batch = follower.read_available()
    assert batch is not None
    assert (texts(batch), batch.skipped_long, batch.position.offset) == (["b"], 1, 2 + 10_001 + 2)


def test_line_of_exactly_max_bytes_is_kept(follow: Follow, log: Path) -> None:
    """The limit counts bytes without the newline: a line of exactly max_line_bytes is delivered."""
    append(log, "x" * 100 + "\n" + "y" * 101 + "\n")
    batch = follow(log, max_line_bytes=100).read_available()
    assert batch is not None
    assert [len(line.text) for line in batch.lines] == [100]
    assert batch.skipped_long == 1


def test_resume_from_saved_position_neither_loses_nor_repeats(follow: Follow, log: Path) -> None:
    """A follower made from a batch's position starts with the very next line, also after more appends."""
    append(log, numbered("a", 5))
    first = follow(log).read_available(max_lines=2)
    assert first is not None
    append(log, numbered("b", 2))
    resumed = follow(log, first.position)
    assert drain(resumed)[0] == ["a-3", "a-4", "a-5", "b-1", "b-2"]


def test_from_end_skips_what_is_there(follow: Follow, log: Path) -> None:
    """Without a position, from_end starts after the last complete line; an unfinished one arrives whole."""
    append(log, "old\nhalf")
    follower = follow(log, from_end=True)
    assert follower.read_available() is None
    append(log, "-done\nnew\n")
    assert collect(follower, 2) == ["half-done", "new"]


def test_missing_file_is_waited_for(follow: Follow, log: Path) -> None:
    """A path that does not exist yet gives None, then its lines from 0 once created (also with from_end)."""
    follower = follow(log, from_end=True)
    assert follower.read_available() is None
    assert follower.position is None
    threading.Timer(0.1, append, (log, "first\n")).start()
    assert collect(follower, 1) == ["first"]


def test_rename_rotation_drains_old_file_first(follow: Follow, log: Path) -> None:
    """After rename+create, lines the writer still appends to the old file come before the new file's."""
    rotated = log.with_name("auth.log.1")
    with log.open("ab", buffering=0) as held:
        held.write(b"old-1\n")
        follower = follow(log)
        assert drain(follower)[0] == ["old-1"]
        log.rename(rotated)
        log.touch()
        held.write(b"old-2\nold-3")  # the writer has not reopened yet
        assert collect(follower, 1) == ["old-2"]
        assert follower.read_available() is None  # the new file is empty: stay with the old one
        held.write(b"\n")
    append(log, "new-1\n")  # the writer reopened
    assert collect(follower, 2) == ["old-3", "new-1"]


def test_unterminated_last_line_of_rotated_file_is_delivered(follow: Follow, log: Path) -> None:
    """A rotated file's last line without a newline is delivered once the new file has data."""
    append(log, "a\nb")
    follower = follow(log)
    assert drain(follower)[0] == ["a"]
    log.rename(log.with_name("auth.log.1"))
    append(log, "c\n")
    first = follower.read_available()
    assert texts(first) == ["b"]
    assert first is not None
    assert first.position.offset == 3
    assert collect(follower, 1) == ["c"]


def test_truncation_restarts_at_zero(follow: Follow, log: Path) -> None:
    """copytruncate without a copy in reach: the file shrank under us, so its new lines are read from 0."""
    append(log, numbered("a", 5))
    follower = follow(log)
    assert len(drain(follower)[0]) == 5
    os.truncate(log, 0)
    append(log, "b-1\n")
    assert collect(follower, 1) == ["b-1"]


def test_truncation_then_regrowth_past_offset_is_noticed(follow: Follow, log: Path) -> None:
    """A truncated file that grew past our old offset before we looked is recognised by its first bytes."""
    append(log, numbered("a", 5))
    follower = follow(log)
    drain(follower)
    os.truncate(log, 0)
    append(log, numbered("b", 10))
    assert drain(follower)[0] == [f"b-{n}" for n in range(1, 11)]


def test_copytruncate_lines_missed_are_read_from_the_copy(follow: Follow, log: Path) -> None:
    """Lines written after our last read but before logrotate's copy are read from the copy, then the new ones."""
    with log.open("ab", buffering=0) as held:  # copytruncate's writer keeps its O_APPEND fd
        held.write(numbered("a", 5).encode())
        follower = follow(log)
        assert len(drain(follower)[0]) == 5
        held.write(b"a-6\na-7\n")
        shutil.copyfile(log, log.with_name("auth.log.1"))
        os.truncate(log, 0)
        held.write(b"b-1\n")
        assert collect(follower, 3) == ["a-6", "a-7", "b-1"]


@pytest.mark.parametrize("while_down", [False, True], ids=["following", "while-down"])
def test_two_copytruncates_past_a_short_copy(follow: Follow, log: Path, while_down: bool) -> None:
    """Read past the end of logrotate's copy, then copied and truncated twice: the later copy is not skipped."""
    with log.open("ab", buffering=0) as held:
        held.write(numbered("a", 5).encode())
        follower = follow(log)
        assert len(drain(follower)[0]) == 5
        snapshot = log.read_bytes()  # logrotate copies here ...
        held.write(b"a-6\n")  # ... this line is written and read before the truncate
        names, saved = drain(follower)
        assert names == ["a-6"]
        if while_down:
            follower.close()
        log.with_name("auth.log.2").write_bytes(snapshot)
        os.truncate(log, 0)
        held.write(numbered("b", 3).encode())
        time.sleep(0.01)  # distinct mtimes, as between real rotations
        shutil.copyfile(log, log.with_name("auth.log.1"))
        os.truncate(log, 0)
        held.write(b"c-1\n")
        if while_down:
            follower = follow(log, saved)
        assert collect(follower, 4) == ["b-1", "b-2", "b-3", "c-1"]
        assert follower.read_available() is None


def test_deleted_file_is_drained_then_replaced(follow: Follow, log: Path) -> None:
    """A deleted file stays open and is read while its writer appends; a new file at the path follows it."""
    with log.open("ab", buffering=0) as held:
        held.write(b"a\n")
        follower = follow(log)
        assert drain(follower)[0] == ["a"]
        log.unlink()
        held.write(b"b\n")
        assert collect(follower, 1) == ["b"]
        assert follower.read_available() is None
    append(log, "c\n")
    assert collect(follower, 1) == ["c"]


@pytest.mark.parametrize("rotated_name", ["auth.log.1", "auth.log.0", "auth.log-20261128"])
def test_predecessor_is_finished_after_downtime(follow: Follow, log: Path, rotated_name: str) -> None:
    """Rotated while we were down: the rest of the saved file comes first, then the new file from 0."""
    append(log, numbered("a", 4))
    saved = follow(log).read_available(max_lines=2)
    assert saved is not None
    append(log, numbered("a", 6)[len(numbered("a", 4)) :])
    log.rename(log.with_name(rotated_name))
    append(log, numbered("b", 2))
    names, _ = drain(follow(log, saved.position))
    assert names == ["a-3", "a-4", "a-5", "a-6", "b-1", "b-2"]


def test_two_rotations_while_down_lose_nothing(follow: Follow, log: Path) -> None:
    """Rotated twice while down: the saved file's rest, the whole middle file, then the current one."""
    append(log, numbered("a", 3))
    saved = follow(log).read_available(max_lines=1)
    assert saved is not None
    log.rename(log.with_name("auth.log.1"))
    append(log, numbered("b", 2))
    time.sleep(0.01)  # distinct mtimes, as between real rotations
    log.with_name("auth.log.1").rename(log.with_name("auth.log.2"))
    log.rename(log.with_name("auth.log.1"))
    append(log, numbered("c", 1))
    names, _ = drain(follow(log, saved.position))
    assert names == ["a-2", "a-3", "b-1", "b-2", "c-1"]


def test_crash_inside_predecessor_resumes_inside_it(follow: Follow, log: Path) -> None:
    """Positions saved before and while finishing a rotated file both lead to exactly the lines after them."""
    append(log, numbered("a", 6))
    follower = follow(log)
    before = follower.read_available(max_lines=2)
    log.rename(log.with_name("auth.log.1"))
    append(log, numbered("b", 1))
    inside = follower.read_available(max_lines=2)  # a-3, a-4 from the rotated file; then a "crash"
    assert before is not None
    assert inside is not None
    assert texts(inside) == ["a-3", "a-4"]
    assert drain(follow(log, before.position))[0] == ["a-3", "a-4", "a-5", "a-6", "b-1"]
    assert drain(follow(log, inside.position))[0] == ["a-5", "a-6", "b-1"]


def test_copytruncate_while_down_reads_the_copy(follow: Follow, log: Path) -> None:
    """Copied and truncated while down: the saved inode's content is found in the copy, then the new lines."""
    append(log, numbered("a", 4))
    saved = follow(log).read_available(max_lines=2)
    assert saved is not None
    shutil.copyfile(log, log.with_name("auth.log.1"))
    os.truncate(log, 0)
    append(log, numbered("b", 2))
    names, _ = drain(follow(log, saved.position))
    assert names == ["a-3", "a-4", "b-1", "b-2"]


def test_unknown_position_starts_over(follow: Follow, log: Path) -> None:
    """A position matching no file restarts the current file from 0 (duplicates rather than loss)."""
    append(log, "a\nb\n")
    for identity in ["garbage", str(FileIdentity(1, 2, PREFIX_BYTES, "0" * 16))]:
        assert drain(follow(log, FilePosition(identity, 2)))[0] == ["a", "b"]


def test_position_identity_grows_with_the_file(follow: Follow, log: Path) -> None:
    """A position taken while the file was short still matches once it is long, and vice versa."""
    append(log, "a\n")
    short = follow(log).read_available()
    assert short is not None
    append(log, numbered("b", 10))
    assert drain(follow(log, short.position))[0] == [f"b-{n}" for n in range(1, 11)]
    longer, position = drain(follow(log, short.position), max_lines=3)
    assert position is not None
    assert FileIdentity.parse(position.identity).length == PREFIX_BYTES  # type: ignore[union-attr]
    assert len(longer) == 10


def test_unreadable_file_raises_source_error(
    follow: Follow, log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Permission denied raises SourceError on every call while it lasts; reading resumes afterwards."""
    append(log, "a\n")
    real_open = os.open

    def denied(path: str | os.PathLike[str], flags: int, *args: int) -> int:
        if Path(path) == log:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args)

    follower = follow(log)
    monkeypatch.setattr(os, "open", denied)  # only our path fails; everything else opens as usual
    for _ in range(2):
        with pytest.raises(SourceError, match="Permission denied"):
            follower.read_available()
    monkeypatch.undo()
    assert texts(follower.read_available()) == ["a"]


def test_wait_times_out_when_nothing_changes(follow: Follow, log: Path) -> None:
    """wait() returns after about its timeout when nothing happens."""
    append(log, "a\n")
    follower = follow(log)
    drain(follower)
    began = time.monotonic()
    follower.wait(0.3)
    assert 0.25 <= time.monotonic() - began < 2.0


def test_wait_wakes_promptly_on_append(follow: Follow, log: Path) -> None:
    """wait() returns soon after a write, well before its timeout."""
    append(log, "a\n")
    follower = follow(log)
    drain(follower)
    threading.Timer(0.1, append, (log, "b\n")).start()
    began = time.monotonic()
    follower.wait(5.0)
    assert time.monotonic() - began < 1.0
    assert texts(follower.read_available()) == ["b"]


def test_missing_directory_falls_back_to_polling(tmp_path: Path) -> None:
    """Without a directory to watch, the follower polls, and finds the file once it exists."""
    path = tmp_path / "later" / "auth.log"
    with FileFollower(path, None, poll_interval=0.02) as follower:
        assert not follower.uses_inotify
        assert follower.read_available() is None
        path.parent.mkdir()
        threading.Timer(0.1, append, (path, "a\n")).start()
        assert collect(follower, 1) == ["a"]


def test_closed_follower_refuses_reads(log: Path) -> None:
    """close() is idempotent and a closed follower refuses further reads."""
    follower = FileFollower(log, None)
    follower.close()
    follower.close()
    with pytest.raises(ValueError, match="closed"):
        follower.read_available()
