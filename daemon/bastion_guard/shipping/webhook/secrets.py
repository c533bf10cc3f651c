"""Webhook secrets: signing keys and URLs that carry tokens, read from a file or the environment.

A Slack incoming-webhook URL *is* its credential (``hooks.slack.com/services/T../B../<token>``), so URLs are
treated like keys: configuration names where they are (``url_file``, ``url_env``), :class:`Secret` hides the
value from ``repr``/``str`` so it cannot reach a log line or an exception by accident, and
:func:`redact_url` gives the form that may be shown (scheme and host only).

A secret file that group or others can read is used (refusing would turn a permissions slip into silent
loss of every alert) but warned about once, with the fix.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from bastion_guard.errors import BastionError
from bastion_guard.rules.fields import Fields

log = logging.getLogger("bastiond.webhook")


class SecretError(BastionError):
    """A secret cannot be read; the message names where it was looked for, never the value."""


@dataclass(frozen=True, slots=True)
class Secret:
    """A value that never shows itself; :meth:`reveal` is for the one place that uses it."""

    _value: str = field(repr=False)

    def reveal(self) -> str:
        """The value. Never log or format the result."""
        return self._value

    def __repr__(self) -> str:
        return "Secret(<hidden>)"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class SecretRef:
    """Where a secret lives: a file (trailing newline stripped) or an environment variable."""

    file: Path | None = None
    env: str | None = None

    def describe(self) -> str:
        """Where, for messages."""
        return str(self.file) if self.file is not None else f"environment variable {self.env}"

    def load(self) -> Secret:
        """Read the secret now; raise :class:`SecretError` naming the place (not the value)."""
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


def secret_ref(section: Fields, name: str, *, required: bool = False) -> SecretRef | None:
    """Read ``<name>_file`` / ``<name>_env``: at most one of them (inline values are handled by the caller)."""
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


def redact_url(url: str) -> str:
    """``https://hooks.slack.com/…``: enough to tell destinations apart, nothing that grants access."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparsable URL>"
    return f"{parts.scheme}://{host}{port}/…"
