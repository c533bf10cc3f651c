"""Shared key pairs on the bastion: read the current one, generate the next one with the right owner.

A new pair is made by ``ssh-keygen`` in a private temporary directory, then given its owner and mode 0600
*before* it is moved beside the live key as ``<key>.next`` (the pair a rotation in progress installs on
the targets). The live key is replaced only by renaming ``.next`` over it. Private key bytes are never
read into this process.
"""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bastion_guard.keys.commands import run
from bastion_guard.keys.errors import KeyFormatError, KeyLifecycleError
from bastion_guard.keys.files import Ownership, atomic_rename, atomic_write
from bastion_guard.keys.pubkey import PublicKey, parse_key


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A private key file and its public key."""

    private: Path
    public: PublicKey

    @property
    def public_path(self) -> Path:
        """``<private>.pub``."""
        return self.private.with_name(self.private.name + ".pub")


def next_path(private: Path) -> Path:
    """Where the pair being rolled out waits: ``<private>.next``."""
    return private.with_name(private.name + ".next")


def load_pair(private: Path) -> KeyPair:
    """The pair at ``private``; the public half is derived from the private key (``ssh-keygen -y``)."""
    if not private.exists():
        raise KeyLifecycleError(f"private key {private} does not exist")
    done = run(["ssh-keygen", "-y", "-f", str(private)])
    if done.returncode != 0:
        raise KeyFormatError(f"{private} is not a usable private key (ssh-keygen -y: {done.said})")
    try:
        return KeyPair(private, parse_key(done.stdout))
    except KeyFormatError as error:
        raise KeyFormatError(f"{private}: {error}") from None


def generate_next(private: Path, owner: str, comment: str) -> KeyPair:
    """Generate a new ed25519 pair as ``<private>.next`` (0600, owned by ``owner``); return it."""
    try:
        account = pwd.getpwnam(owner)
    except KeyError:
        raise KeyLifecycleError(f"owner {owner!r} of {private} is not an account on this host") from None
    target = next_path(private)
    scratch = Path(tempfile.mkdtemp(prefix=".bastion-guard-keygen.", dir=private.parent))
    try:
        made = scratch / "key"
        done = run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(made)])
        if done.returncode != 0:
            raise KeyLifecycleError(f"ssh-keygen could not generate a key for {private}: {done.said}")
        for path, mode in ((made, 0o600), (made.with_name("key.pub"), 0o644)):
            os.chown(path, account.pw_uid, account.pw_gid)
            path.chmod(mode)
        atomic_rename(made.with_name("key.pub"), target.with_name(target.name + ".pub"))
        atomic_rename(made, target)
    except OSError as error:
        raise KeyLifecycleError(f"cannot prepare the new key for {private}: {error.strerror or error}") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return load_pair(target)


def switch_to_next(private: Path) -> KeyPair:
    """Make ``<private>.next`` the live key by one rename, then write the matching ``.pub`` (0644, same owner).

    The rename is the switch: a crash after it leaves the new key live (the ledger's rotation notices by
    fingerprint), a crash before it leaves the old key live and ``.next`` waiting. ssh reads only the
    private key, so a stale ``.pub`` for a moment misleads nobody.
    """
    pending = next_path(private)
    if not pending.exists():
        raise KeyLifecycleError(f"no new key waiting at {pending}")
    pair = load_pair(pending)
    owner = Ownership.of(pending)
    atomic_rename(pending, private)
    atomic_write(private.with_name(private.name + ".pub"), f"{pair.public.line}\n".encode(),
                 Ownership(0o644, owner.uid, owner.gid))
    pending.with_name(pending.name + ".pub").unlink(missing_ok=True)
    return KeyPair(private, pair.public)
