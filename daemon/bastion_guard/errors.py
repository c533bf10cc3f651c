"""The exception tree of bastion-guard.

::

    BastionError
     ├── ConfigError          a configuration or rule file is wrong; carries every problem found
     ├── SourceError          a log source cannot be read
     ├── StateError           the state database cannot be used (state/errors.py)
     ├── ActionError          a firewall change failed (actions/base.py)
     ├── ControlError         bastiond cannot be reached or refused a request (runtime/control.py)
     └── SshdConfigError      ``sshd -T`` could not report the effective configuration (hardening/)

Every :class:`ConfigProblem` names the file, line, column and key path, so an operator can go straight
to the mistake; a file with any problem is rejected whole.
"""

from __future__ import annotations

from dataclasses import dataclass


class BastionError(Exception):
    """Base of every error bastion-guard raises on purpose."""


@dataclass(frozen=True, slots=True)
class Location:
    """Where in which file a value was written (1-based line and column)."""

    path: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        if self.line is None:
            return self.path
        if self.column is None:
            return f"{self.path}:{self.line}"
        return f"{self.path}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One mistake in a configuration file."""

    location: Location
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location.path else ""
        key = f"{self.key}: " if self.key else ""
        return f"{where}{key}{self.message}"


class ConfigError(BastionError):
    """One or more configuration problems; nothing from the offending file was loaded."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(problem) for problem in problems))


class SourceError(BastionError):
    """A log source could not be opened or read."""
