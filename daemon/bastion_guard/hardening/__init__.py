"""Hardening audit: the effective sshd configuration and bastion-guard's own setup against a bastion baseline.

``sshd_config`` reads what sshd will really do (``sshd -T``), ``sshd_audit`` holds the checks as a table,
``self_audit`` looks at bastion-guard's nft table and state permissions, and ``report`` turns findings into
the human table, JSON and an sshd_config.d drop-in. ``bastionctl audit`` (cli/audit_cmd.py) wires them up.
"""

from __future__ import annotations

from bastion_guard.hardening.findings import Finding, Severity, exit_code, summarize
from bastion_guard.hardening.sshd_audit import CHECKS, Check, Verdict, audit_sshd
from bastion_guard.hardening.sshd_config import SshdConfig, SshdConfigError, parse_effective, read_effective

__all__ = [
    "CHECKS",
    "Check",
    "Finding",
    "Severity",
    "SshdConfig",
    "SshdConfigError",
    "Verdict",
    "audit_sshd",
    "exit_code",
    "parse_effective",
    "read_effective",
    "summarize",
]
