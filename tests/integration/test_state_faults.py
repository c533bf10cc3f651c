"""The state store under real faults: a full disk, a read-only file system, a writer killed mid-commit.

The disk tests mount a tiny tmpfs, so they need root; they skip, saying why, without it. The kill test
needs nothing special: it SIGKILLs a child process that commits in a loop.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bastion_guard.state import BanRecord, Position, StateError, StateStore

T0 = 1_795_899_600.0


def ban(target: str, expires: float = T0 + 3600) -> BanRecord:
    """A ban with a few evidence lines, so a batch of them takes real space."""
    evidence = tuple((T0 - i, "auth.log", 1000 + i) for i in range(5))
    return BanRecord(target, "brute", T0, expires, 1, f"failures from {target}", "local", evidence)


def mount(*args: str) -> None:
    """Run mount(8) or umount(8); a failure fails the test with its stderr."""
    result = subprocess.run(list(args), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(args)}: {result.stderr.strip()}")


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A 512 KiB tmpfs mounted on a temp dir, unmounted afterwards; skips when we cannot mount."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a 512 KiB tmpfs for disk-full and read-only tests")
    if shutil.which("mount") is None or shutil.which("umount") is None:
        pytest.skip("needs mount(8) and umount(8)")
    where = tmp_path / "tiny"
    where.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k,mode=0755", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (no CAP_SYS_ADMIN?): {result.stderr.strip()}")
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], check=False)


def fill_up(directory: Path) -> Path:
    """Write a file until the file system is full; returns it (delete it to free the space)."""
    filler = directory / "filler"
    chunk = b"\0" * 4096
    with filler.open("wb", buffering=0) as out:
        while True:
            try:
                out.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                return filler


@pytest.mark.root
def test_disk_full_rolls_back_and_the_store_recovers(tiny_fs: Path) -> None:
    """On a full disk commit raises StateError and saves nothing; after space is freed the same batch commits."""
    path = tiny_fs / "state" / "state.db"
    store = StateStore.open(path)
    try:
        store.commit([Position("auth.log", "id", 1, None)], [ban("192.0.2.1")])
        filler = fill_up(tiny_fs)
        batch = (
            [Position("auth.log", "id", 2, None)],
            [ban(f"10.0.{i // 256}.{i % 256}") for i in range(400)],
            ["192.0.2.1"],
            {("brute", "10.0.0.1"): (1, T0)},
        )
        with pytest.raises(StateError, match=r"state\.db: the disk is full"):
            store.commit(*batch)
        assert store.positions()["auth.log"].offset == 1
        assert [b.target for b in store.active_bans(0)] == ["192.0.2.1"]
        assert store.history() == {}

        filler.unlink()
        store.commit(*batch)
        assert store.positions()["auth.log"].offset == 2
        assert len(store.active_bans(0)) == 400
    finally:
        store.close()
    with StateStore.open(path) as reopened:
        assert reopened.recovery is None
        assert reopened.positions()["auth.log"].offset == 2
        assert len(reopened.active_bans(0)) == 400


@pytest.mark.root
def test_read_only_file_system_is_a_state_error(tiny_fs: Path) -> None:
    """On a read-only mount, opening names the directory and says it is read-only, new file or existing."""
    existing = tiny_fs / "old" / "state.db"
    StateStore.open(existing).close()
    mount("mount", "-o", "remount,ro", str(tiny_fs))
    with pytest.raises(StateError, match=rf"{tiny_fs}/old is not writable: it is on a read-only file system"):
        StateStore.open(existing)
    with pytest.raises(StateError, match=rf"cannot create state directory {tiny_fs}/new: Read-only file system"):
        StateStore.open(tiny_fs / "new" / "state.db")


WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from bastion_guard.state import BanRecord, Position, StateStore

    store = StateStore.open(Path(sys.argv[1]))
    batch = 0
    while True:
        bans = [BanRecord(f"{batch}-{j}", "brute", 0.0, 1e12, 1, "r", "local", ((0.0, "auth", j),)) for j in range(50)]
        store.commit([Position("auth.log", None, batch, None)], bans, (), {("brute", "batches"): (batch, 0.0)})
        if batch == 0:
            print("ready", flush=True)
        batch += 1
    """
)


@pytest.mark.parametrize("delay", [0.05, 0.2, 0.4])
def test_killed_writer_leaves_whole_batches(tmp_path: Path, delay: float) -> None:
    """A writer SIGKILLed mid-loop leaves its last position with exactly the bans of the batches up to it."""
    path = tmp_path / "state.db"
    with subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
            time.sleep(delay)
        finally:
            child.send_signal(signal.SIGKILL)
    assert child.returncode == -signal.SIGKILL
    with StateStore.open(path) as store:
        assert store.recovery is None
        last = store.positions()["auth.log"].offset
        assert last >= 0
        assert len(store.active_bans(0)) == 50 * (last + 1)
        assert store.history() == {("brute", "batches"): (last, 0.0)}
