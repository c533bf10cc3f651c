"""What an audit reports: one :class:`Finding` per check, and the exit code a set of findings maps to."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

EXIT_OK = 0
EXIT_WARN = 1
EXIT_FAIL = 2


class Severity(enum.Enum):
    """How bad a finding is; the order is the order of the report (worst first)."""

    FAIL = "fail"
    WARN = "warn"
    OK = "ok"


@dataclass(frozen=True, slots=True)
class Finding:
    """The result of one check.

    ``reason`` says why the setting matters on a bastion; ``note`` what this host does about it.
    ``fix`` is an sshd_config line (only on non-ok findings). ``review`` marks a fix that needs a person
    first: it carries example values (targets, a group, a path) or has a caveat in ``note``, so the
    drop-in writes it commented out. ``command`` is a step outside sshd_config (create a file, fix a
    mode) to run before ``fix`` helps.
    """

    id: str
    severity: Severity
    setting: str
    value: str | None
    reason: str
    note: str = ""
    fix: str | None = None
    review: bool = False
    command: str | None = None

    def as_json(self) -> dict[str, object]:
        """The finding as JSON-ready data (the ``-o json`` contract; keys never disappear)."""
        return {
            "id": self.id,
            "severity": self.severity.value,
            "setting": self.setting,
            "value": self.value,
            "reason": self.reason,
            "note": self.note,
            "fix": self.fix,
            "review": self.review,
            "command": self.command,
        }


def summarize(findings: Iterable[Finding]) -> dict[str, int]:
    """Counts per severity, every severity present (``{"fail": 0, "warn": 2, "ok": 20}``)."""
    counts = dict.fromkeys((severity.value for severity in Severity), 0)
    for finding in findings:
        counts[finding.severity.value] += 1
    return counts


def exit_code(findings: Iterable[Finding]) -> int:
    """0 when everything is ok, 1 when the worst is a warning, 2 when anything fails."""
    severities = {finding.severity for finding in findings}
    if Severity.FAIL in severities:
        return EXIT_FAIL
    if Severity.WARN in severities:
        return EXIT_WARN
    return EXIT_OK
