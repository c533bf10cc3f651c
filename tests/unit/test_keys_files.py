"""Key files on the bastion: authorized_keys removal keeps everything else, the KRL is never left missing
or half-written, the ledger survives and locks."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from bastion_guard.keys import krl
from bastion_guard.keys.authorized_keys import keys_in, remove_keys
from bastion_guard.keys.errors import KeyLifecycleError
from bastion_guard.keys.ledger import Rotation, locked, read
from bastion_guard.keys.pubkey import PublicKey, parse_key


def _key(tmp_path: Path, name: str) -> PublicKey:
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen missing (apt-get install openssh-client)")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(tmp_path / name)],
                   check=True)
    return parse_key((tmp_path / f"{name}.pub").read_text())


def test_removal_keeps_every_other_line_and_the_mode(tmp_path: Path) -> None:
    """Comments, options, other keys and unparsable lines stay byte for byte; mode kept; backup written."""
    alice, bob = _key(tmp_path, "alice"), _key(tmp_path, "bob")
    path = tmp_path / "authorized_keys"
    original = (f"# team keys\n{bob.line}\nrestrict,from=\"10.0.0.0/8\" {alice.line}\nssh-ed25519 garbage\n\n"
                f"{alice.type} {alice.blob} second copy\n")
    path.write_text(original)
    path.chmod(0o640)
    removed = remove_keys(path, [alice], tmp_path / "backups", "20261128T000000Z")
    assert [key.fingerprint for key in removed] == [alice.fingerprint] * 2
    assert path.read_text() == f"# team keys\n{bob.line}\nssh-ed25519 garbage\n\n"
    assert path.stat().st_mode & 0o777 == 0o640
    (backup,) = (tmp_path / "backups").iterdir()
    assert backup.read_text() == original and backup.stat().st_mode & 0o777 == 0o600
    assert keys_in(path) == [bob]


def test_a_file_without_the_keys_is_not_touched(tmp_path: Path) -> None:
    """Idempotence: nothing to remove, no rewrite and no backup."""
    alice, bob = _key(tmp_path, "alice"), _key(tmp_path, "bob")
    path = tmp_path / "authorized_keys"
    path.write_text(f"{bob.line}\n")
    before = path.stat().st_ino
    assert remove_keys(path, [alice], tmp_path / "backups", "x") == []
    assert path.stat().st_ino == before
    assert not (tmp_path / "backups").exists()
    assert remove_keys(tmp_path / "missing", [alice], tmp_path / "backups", "x") == []


def test_a_symlinked_file_is_not_rewritten(tmp_path: Path) -> None:
    """A link could point anywhere: refused with a clear error, the link and its target untouched."""
    alice = _key(tmp_path, "alice")
    target = tmp_path / "elsewhere"
    target.write_text(f"{alice.line}\n")
    link = tmp_path / "authorized_keys"
    link.symlink_to(target)
    with pytest.raises(KeyLifecycleError, match="symbolic link"):
        remove_keys(link, [alice], tmp_path / "backups", "x")
    assert link.is_symlink() and target.read_text() == f"{alice.line}\n"


def test_krl_update_is_verified_and_idempotent(tmp_path: Path) -> None:
    """Revoked keys show as revoked with ssh-keygen -Q; revoking again changes nothing; others stay ok."""
    alice, bob = _key(tmp_path, "alice"), _key(tmp_path, "bob")
    live = tmp_path / "revoked.krl"
    subprocess.run(["ssh-keygen", "-k", "-f", str(live)], check=True, capture_output=True)
    assert krl.revoke(live, [alice]) == [alice]
    assert krl.revoked(live, alice) and not krl.revoked(live, bob)
    inode = live.stat().st_ino
    assert krl.revoke(live, [alice]) == []
    assert live.stat().st_ino == inode, "nothing new to revoke: the live KRL is not replaced"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == [], "no temporary file left"


def test_a_failed_krl_update_leaves_the_live_file_as_it_was(tmp_path: Path) -> None:
    """A KRL that ssh-keygen cannot read is not replaced; the error names the file."""
    alice = _key(tmp_path, "alice")
    live = tmp_path / "revoked.krl"
    live.write_bytes(b"not a KRL")
    with pytest.raises(KeyLifecycleError, match=r"revoked\.krl"):
        krl.revoke(live, [alice])
    assert live.read_bytes() == b"not a KRL"


@pytest.mark.skipif(os.geteuid() != 0, reason="a missing KRL is recreated root-owned: needs root")
def test_a_missing_krl_is_created(tmp_path: Path) -> None:
    """No KRL (sshd refuses every key): it is created, 0644 root, holding the revoked key only."""
    alice, bob = _key(tmp_path, "alice"), _key(tmp_path, "bob")
    live = tmp_path / "revoked.krl"
    assert krl.revoke(live, [alice]) == [alice]
    assert live.stat().st_mode & 0o777 == 0o644 and live.stat().st_uid == 0
    assert krl.revoked(live, alice) and not krl.revoked(live, bob)


def test_ledger_round_trip_and_lock(tmp_path: Path) -> None:
    """Steps saved one by one are read back; a second writer is refused while the lock is held."""
    with locked(tmp_path) as ledger:
        run = Rotation("ai-user", "offboarding alice", "SHA256:old", "SHA256:new", 1.0, old_key="ssh-ed25519 AAAA")
        ledger.rotations["ai-user"] = run
        ledger.mark(run, "ai@10.0.0.1:22", "added", 2.0)
        with pytest.raises(KeyLifecycleError, match="another key rotation is running"), locked(tmp_path, wait=False):
            pass
    again = read(tmp_path)
    reopened = again.open_rotation("ai-user")
    assert reopened is not None and reopened.done("ai@10.0.0.1:22", "added")
    assert not reopened.done("ai@10.0.0.1:22", "verified")
    ledger_file = tmp_path / "keys" / "ledger.json"
    assert ledger_file.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "keys").stat().st_mode & 0o777 == 0o700


def test_a_damaged_ledger_is_a_clear_error(tmp_path: Path) -> None:
    """A ledger that is not ours is named, never silently replaced."""
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "ledger.json").write_text("{not json")
    with pytest.raises(KeyLifecycleError, match=r"ledger\.json"):
        read(tmp_path)
