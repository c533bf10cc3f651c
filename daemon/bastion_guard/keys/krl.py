"""The bastion's OpenSSH key revocation list (KRL): add keys, verify, and never leave it missing.

sshd reads ``RevokedKeys`` on every public key authentication, and **a missing or unreadable file makes it
refuse every key** (verified with OpenSSH 9.2). So the live file is only ever replaced by rename: the
update is made on a copy, checked with ``ssh-keygen -Q`` (exit 1 means revoked), and renamed over it. A
missing KRL is created (empty, then updated) the same way; nothing here deletes it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from bastion_guard.hardening.sshd_config import SshdConfigError, default_sshd, read_effective
from bastion_guard.keys.commands import checked, run
from bastion_guard.keys.errors import KeyLifecycleError
from bastion_guard.keys.files import Ownership, atomic_rename
from bastion_guard.keys.pubkey import PublicKey

log = logging.getLogger(__name__)
KRL_OWNERSHIP = Ownership(0o644, 0, 0)  # sshd reads it as root; users may see what is revoked, not change it


def revoked(krl: Path, key: PublicKey) -> bool:
    """Whether ``krl`` revokes ``key`` (``ssh-keygen -Q``: exit 1 = revoked, 0 = not)."""
    if not krl.exists():
        return False
    with _key_file([key]) as path:
        done = run(["ssh-keygen", "-Q", "-f", str(krl), str(path)])
    if done.returncode not in (0, 1):
        raise KeyLifecycleError(f"ssh-keygen -Q cannot read {krl}: {done.said}")
    return done.returncode == 1 and "REVOKED" in done.stdout


def revoke(krl: Path, keys: Sequence[PublicKey]) -> list[PublicKey]:
    """Add ``keys`` to ``krl`` (created if missing); return the keys that were not revoked before.

    The new list is written beside the live one, each key is checked in it, then it is renamed into
    place and checked again. On any failure the live file is as it was.
    """
    missing = not krl.exists()
    new = [key for key in keys if missing or not revoked(krl, key)]
    if not new and not missing:
        return []
    try:
        return _replace(krl, new, missing=missing)
    except OSError as error:
        raise KeyLifecycleError(f"cannot update the KRL {krl}: {error.strerror or error} (the live file is unchanged)"
                                ) from error


def _replace(krl: Path, new: Sequence[PublicKey], *, missing: bool) -> list[PublicKey]:
    ownership = Ownership.of(krl) if not missing else KRL_OWNERSHIP
    fd, name = tempfile.mkstemp(prefix=f".{krl.name}.", dir=krl.parent)
    os.close(fd)
    candidate = Path(name)
    try:
        if missing:
            log.warning("KRL %s is missing: sshd refuses every public key until it exists; creating it", krl)
            candidate.unlink()  # ssh-keygen -k creates the file itself
            checked(["ssh-keygen", "-k", "-f", str(candidate)], f"creating an empty KRL beside {krl}")
        else:
            candidate.write_bytes(krl.read_bytes())
        if new:
            with _key_file(new) as path:
                checked(["ssh-keygen", "-k", "-u", "-f", str(candidate), str(path)], f"updating a copy of {krl}")
        for key in new:
            if not revoked(candidate, key):
                raise KeyLifecycleError(f"ssh-keygen -Q does not show {key.fingerprint} revoked in the new {krl}")
        candidate.chmod(ownership.mode)
        if (ownership.uid, ownership.gid) != (os.geteuid(), os.getegid()):
            os.chown(candidate, ownership.uid, ownership.gid)
        atomic_rename(candidate, krl)
    except BaseException:
        with contextlib.suppress(OSError):
            candidate.unlink()
        raise
    for key in new:
        if not revoked(krl, key):
            raise KeyLifecycleError(f"{krl} was replaced but ssh-keygen -Q does not show {key.fingerprint} revoked")
    return list(new)


def sshd_reads(krl: Path, sshd_config: Path | None) -> str | None:
    """None when ``sshd -T`` says RevokedKeys is ``krl``; otherwise a warning to shout."""
    try:
        effective = read_effective(default_sshd(), sshd_config)
    except SshdConfigError as error:
        return f"cannot check that sshd reads the KRL {krl} (sshd -T failed): {error}"
    configured = effective.get("revokedkeys")
    if configured is None or configured == "none":
        return f"sshd has no RevokedKeys: the KRL {krl} is NOT enforced; add 'RevokedKeys {krl}' to sshd_config"
    if Path(configured).resolve() != krl.resolve():
        return f"sshd's RevokedKeys is {configured}, not {krl}: revocations written here are NOT enforced"
    return None


@contextlib.contextmanager
def _key_file(keys: Sequence[PublicKey]) -> Iterator[Path]:
    """A temporary 0600 file holding ``keys``, one per line (ssh-keygen reads keys from files only)."""
    fd, name = tempfile.mkstemp(prefix="bastion-guard-keys.")
    try:
        os.write(fd, "".join(f"{key.line}\n" for key in keys).encode())
        os.close(fd)
        yield Path(name)
    finally:
        with contextlib.suppress(OSError):
            Path(name).unlink()
