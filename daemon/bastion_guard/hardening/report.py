"""Findings as text: the human table, the ``-o json`` document and the sshd_config.d drop-in. Pure, no I/O."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from bastion_guard.hardening.findings import Finding, Severity, summarize

# "00-" sorts before the other drop-ins (cloud-init's 50-cloud-init.conf, for one), and sshd keeps the
# first value it reads for a keyword, so our lines win; Debian's sshd_config includes the directory first.
DROPIN_PATH = "/etc/ssh/sshd_config.d/00-bastion-guard.conf"
_WIDTH = 100
_VALUE_WIDTH = 60


def as_json(findings: Sequence[Finding], dropin: str | None = None) -> dict[str, object]:
    """``{"findings": [...], "summary": {"fail": n, "warn": n, "ok": n}}``, plus ``dropin`` after ``--fix``."""
    document: dict[str, object] = {
        "findings": [finding.as_json() for finding in findings],
        "summary": summarize(findings),
    }
    if dropin is not None:
        document["dropin"] = {"path": DROPIN_PATH, "content": dropin}
    return document


def render_human(findings: Sequence[Finding], source: str) -> str:
    """The report: one block per severity (worst first); fail and warn rows say why and how to fix."""
    width = max((len(finding.id) for finding in findings), default=0)
    lines = [f"Configuration: {source} (Match blocks not applied)"]
    for severity in Severity:
        group = [finding for finding in findings if finding.severity is severity]
        if not group:
            continue
        lines += ["", f"{severity.value.upper()} ({len(group)})"]
        for finding in group:
            lines.append(f"  {finding.id:<{width}}  {finding.setting} {_short(finding.value)}")
            if severity is not Severity.OK:
                lines += _wrapped("why:  ", finding.reason)
            if finding.note:
                lines += _wrapped("note: ", finding.note)
            if finding.command:
                lines.append(f"      run:  {finding.command}")
            if finding.fix:
                review = "   (review before use)" if finding.review else ""
                lines.append(f"      fix:  {finding.fix}{review}")
    counts = summarize(findings)
    lines += ["", f"{counts['fail']} fail, {counts['warn']} warn, {counts['ok']} ok."]
    if any(finding.fix for finding in findings):
        lines.append(f"`bastionctl audit --fix` prints the fix lines as a drop-in for {DROPIN_PATH}.")
    return "\n".join(lines) + "\n"


def render_dropin(findings: Sequence[Finding], source: str) -> str:
    """An sshd_config.d file with the fix line of every non-ok finding, each under a comment saying why.

    Fixes marked for review (example values, a caveat) or needing a command first are commented out. sshd only
    treats lines *starting* with ``#`` as comments, so every comment has a line of its own.
    """
    lines = [
        f"# {DROPIN_PATH}",
        f"# Proposed by `bastionctl audit --fix` for: {source}",
        "# sshd keeps the FIRST value it reads for each keyword. Debian's sshd_config includes",
        "# /etc/ssh/sshd_config.d/*.conf at its top, in name order, so this file (00-) wins; elsewhere add",
        f"# `Include {DROPIN_PATH}` as the first line of sshd_config.",
        "# Commented-out settings need you first (example values, a caveat, a command): do that, then uncomment.",
        "# Then: sshd -t && sshd -T | grep -i KEYWORD; reload sshd; keep this session until a new login works.",
    ]
    seen: set[str] = set()
    for finding in findings:
        if finding.severity is Severity.OK or not finding.fix:
            continue
        keyword = finding.fix.split(" ", 1)[0].lower()
        if keyword in seen:  # sshd would ignore a second line for the same keyword anyway
            continue
        seen.add(keyword)
        lines += ["", *_comment(f"{finding.id} ({finding.severity.value}): {finding.reason}")]
        if finding.note:
            lines += _comment(f"now: {finding.note}")
        if finding.command:
            lines.append(f"# first run: {finding.command}")  # never wrapped: it must stay copyable
        if finding.review:
            lines += _comment("review before use: example values, or the caveat above")
        commented = finding.review or finding.command is not None
        lines.append(f"#{finding.fix}" if commented else finding.fix)
    if not seen:
        lines += ["", "# Nothing to change: every sshd check passed."]
    return "\n".join(lines) + "\n"


def _short(value: str | None) -> str:
    if value is None:
        return "(unset)"
    return value if len(value) <= _VALUE_WIDTH else value[: _VALUE_WIDTH - 3] + "..."


def _wrapped(label: str, text: str) -> list[str]:
    indent = "      "
    return textwrap.wrap(text, _WIDTH, initial_indent=indent + label, subsequent_indent=indent + " " * len(label),
                         break_long_words=False, break_on_hyphens=False)


def _comment(text: str) -> list[str]:
    # Never split a word: algorithm names, paths and commands must stay copyable.
    return textwrap.wrap(text, _WIDTH, initial_indent="# ", subsequent_indent="#   ", break_long_words=False,
                         break_on_hyphens=False)
