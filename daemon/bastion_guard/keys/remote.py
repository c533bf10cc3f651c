"""Steps on a target, run from the bastion over ssh: add a key, log in with a key, remove a key.

The remote commands are constant scripts; the data (the authorized_keys path, the key) goes on stdin
and is read with ``read -r``, so no key, comment or path is ever parsed by a shell as code. Each
script is idempotent: adding a key already there, or removing one already gone, changes nothing. ssh
runs with ``-F /dev/null`` (the operator's ssh_config cannot change what we do), the one key given
(``IdentitiesOnly``, no agent), batch mode, and host keys pinned in our own known_hosts (first use
accepted, a change refused).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bastion_guard.keys.commands import run
from bastion_guard.keys.errors import RemoteError
from bastion_guard.keys.pubkey import PublicKey

CONNECT_TIMEOUT_SECS = 10
COMMAND_TIMEOUT_SECS = 60.0

# stdin: authorized_keys path (relative to $HOME or absolute), the key line, the key's base64 blob.
ADD_KEY = r"""set -eu
umask 077
cd
IFS= read -r f
IFS= read -r key
IFS= read -r blob
mkdir -p -- "$(dirname -- "$f")"
touch -- "$f"
if grep -qF -- "$blob" "$f"; then echo present; exit 0; fi
if [ -s "$f" ] && [ -n "$(tail -c 1 -- "$f")" ]; then echo >> "$f"; fi
printf '%s\n' "$key" >> "$f"
grep -qF -- "$blob" "$f"
echo added
"""

# stdin: authorized_keys path, the base64 blob of the key to remove. Rewrites by rename, mode kept.
REMOVE_KEY = r"""set -eu
umask 077
cd
IFS= read -r f
IFS= read -r blob
if [ ! -e "$f" ] || ! grep -qF -- "$blob" "$f"; then echo absent; exit 0; fi
t=$(mktemp -- "$f.XXXXXX")
grep -vF -- "$blob" "$f" > "$t" || [ $? -eq 1 ]
chmod --reference="$f" -- "$t" 2>/dev/null || chmod 600 -- "$t"
mv -f -- "$t" "$f"
if grep -qF -- "$blob" "$f"; then exit 3; fi
echo removed
"""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One host of a target, as the bastion reaches it."""

    host: str
    port: int
    account: str
    authorized_keys: str

    def __str__(self) -> str:
        return f"{self.account}@{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Ssh:
    """How the bastion runs ssh to targets."""

    known_hosts: Path
    connect_timeout: int = CONNECT_TIMEOUT_SECS

    def argv(self, endpoint: Endpoint, identity: Path, command: str) -> list[str]:
        """ssh's argv: every option fixed here, the host after ``--`` (a host cannot become an option)."""
        return [
            "ssh", "-F", "/dev/null", "-T",
            "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
            "-o", "PreferredAuthentications=publickey", "-o", "PasswordAuthentication=no",
            "-o", "StrictHostKeyChecking=accept-new", "-o", f"UserKnownHostsFile={self.known_hosts}",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", f"ConnectTimeout={self.connect_timeout}",
            "-o", "LogLevel=ERROR", "-i", str(identity), "-p", str(endpoint.port), "-l", endpoint.account,
            "--", endpoint.host, command,
        ]

    def _run(self, endpoint: Endpoint, identity: Path, command: str, stdin: str, what: str) -> str:
        done = run(self.argv(endpoint, identity, command), stdin=stdin, timeout=COMMAND_TIMEOUT_SECS)
        if done.returncode != 0:
            raise RemoteError(f"{endpoint}: {what} failed (ssh exit {done.returncode}): {done.said}")
        return done.stdout.strip()

    def add_key(self, endpoint: Endpoint, identity: Path, key: PublicKey) -> str:
        """Log in with ``identity`` and append ``key`` unless present; ``added`` or ``present``."""
        data = f"{endpoint.authorized_keys}\n{key.line}\n{key.blob}\n"
        return self._run(endpoint, identity, ADD_KEY, data, f"adding {key.fingerprint}")

    def remove_key(self, endpoint: Endpoint, identity: Path, key: PublicKey) -> str:
        """Log in with ``identity`` and remove ``key``; ``removed`` or ``absent``."""
        data = f"{endpoint.authorized_keys}\n{key.blob}\n"
        return self._run(endpoint, identity, REMOVE_KEY, data, f"removing {key.fingerprint}")

    def can_log_in(self, endpoint: Endpoint, identity: Path) -> tuple[bool, str]:
        """Whether a login with ``identity`` alone succeeds (``true`` runs); and what ssh said if not."""
        done = run(self.argv(endpoint, identity, "true"), timeout=COMMAND_TIMEOUT_SECS)
        return done.returncode == 0, done.said
