"""Secrets for sinks (API keys, passwords, tokens): read from a file or an environment variable, never inline.

A :class:`Secret` hides its value from ``repr``/``str``, so it cannot leak into a log line, an exception
or ``--check-config`` output by accident; only :meth:`Secret.reveal` gives the value, at the one place that
hands it to a client library. Configuration names where the secret is (``password_file: /etc/...`` or
``password_env: ES_PASSWORD``), so the YAML itself can be world-readable in a repository.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from bastion_guard.errors import BastionError
from bastion_guard.rules.fields import Fields


class SecretError(BastionError):
    """A secret's file or variable cannot be read (the message names where, never the value)."""


@dataclass(frozen=True, slots=True)
class SecretRef:
    """Where a secret lives: a file (first line, trailing newline stripped) or an environment variable."""

    file: Path | None = None
    env: str | None = None

    def load(self) -> Secret:
        """Read the secret now; raise :class:`SecretError` naming the place."""
        if self.file is not None:
            try:
                text = self.file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as error:
                raise SecretError(f"cannot read secret file {self.file}: {getattr(error, 'strerror', None) or error}"
                                  ) from None
            value = text.rstrip("\r\n")
            where = str(self.file)
        else:
            value = os.environ.get(self.env or "", "")
            where = f"environment variable {self.env}"
        if not value:
            raise SecretError(f"secret in {where} is empty")
        return Secret(value)


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


def secret_ref(section: Fields, name: str, *, required: bool = False) -> SecretRef | None:
    """Read ``<name>_file`` / ``<name>_env`` from ``section``: at most one of them, and no inline ``<name>``."""
    if section.has(name):
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
