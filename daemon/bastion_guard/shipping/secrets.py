"""Secrets for sinks (API keys, passwords, signing keys, URLs that carry tokens): from a file or the environment.

A :class:`Secret` hides its value from ``repr``/``str``, so it cannot leak into a log line, an exception or
``--check-config`` output by accident; only :meth:`Secret.reveal` gives the value, at the one place that
hands it to a client library. Configuration names where the secret is (``password_file: /etc/...`` or
``password_env: ES_PASSWORD``), so the YAML itself can be world-readable in a repository.

A secret file holds the secret (surrounding whitespace and the final newline are dropped; a webhook signing
secret may hold several white-space separated keys while they are rotated). A file
that group or others can read is used (refusing would turn a permissions slip into silent loss of every
shipped record and alert) but warned about, with the fix.

A Slack incoming-webhook URL *is* its credential, so URLs with tokens are secrets too; :func:`redact_url`
gives the form that may be shown (scheme and host only).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from bastion_guard.errors import BastionError
from bastion_guard.rules.fields import Fields

log = logging.getLogger("bastiond.secrets")


class SecretError(BastionError):
    """A secret's file or variable cannot be read (the message names where, never the value)."""


@dataclass(frozen=True, slots=True)
class Secret:
    """A secret value that never shows itself."""

    _value: str = field(repr=False)

    def reveal(self) -> str:
        """The value, for the client library that needs it. Never log or format the result."""
        return self._value

    def __repr__(self) -> str:
        return "Secret(<hidden>)"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class SecretRef:
    """Where a secret lives: a file or an environment variable. Holds no value itself."""

    file: Path | None = None
    env: str | None = None

    def describe(self) -> str:
        """Where, for messages."""
        return str(self.file) if self.file is not None else f"environment variable {self.env}"

    def load(self) -> Secret:
        """Read the secret now; raise :class:`SecretError` naming the place (never the value)."""
        raw = _read_file(self.file) if self.file is not None else os.environ.get(self.env or "", "")
        value = raw.strip()
        if not value:
            raise SecretError(f"secret in {self.describe()} is empty")
        return Secret(value)


def _read_file(path: Path) -> str:
    try:
        with path.open(encoding="utf-8") as stream:
            mode = os.fstat(stream.fileno()).st_mode
            text = stream.read()
    except (OSError, UnicodeDecodeError) as error:
        cause = getattr(error, "strerror", None) or type(error).__name__
        raise SecretError(f"cannot read secret file {path}: {cause}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("secret file %s is readable by group or others (mode %04o): chmod 600 %s",
                    path, stat.S_IMODE(mode), path)
    return text


def secret_ref(section: Fields, name: str, *, required: bool = False, inline: bool = False) -> SecretRef | None:
    """Read ``<name>_file`` / ``<name>_env`` from ``section``: at most one of them.

    An inline ``<name>`` is refused unless ``inline`` says the caller handles it (a webhook ``url`` without a
    token may be written inline).
    """
    if not inline and section.has(name):
        section.raw(name)
        section.problem(name, f"secrets are not written inline: use {name}_file or {name}_env")
    file = section.get(f"{name}_file", str, "")
    env = section.get(f"{name}_env", str, "")
    if file and env:
        section.problem(f"{name}_env", f"give {name}_file or {name}_env, not both")
        return None
    if not (file or env):
        if required:
            section.problem(f"{name}_file", f"is required (or {name}_env)")
        return None
    return SecretRef(Path(file)) if file else SecretRef(env=env)


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine: the one place where credentials may travel
    over plain http or TCP without being exposed on a network."""
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def redact_url(url: str) -> str:
    """``https://hooks.slack.com/…``: enough to tell destinations apart, nothing that grants access."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparsable URL>"
    return f"{parts.scheme}://{host}{port}/…"
