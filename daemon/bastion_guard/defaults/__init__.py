"""Embedded defaults: the shipped rule files, so bastion-guard works with no configuration at all."""

from __future__ import annotations

import os
from pathlib import Path

SYSTEM_RULES = Path("/etc/bastion-guard/rules")
BUNDLED_RULES = Path(__file__).resolve().parent / "rules"
DEMO_LOG = Path(__file__).resolve().parent / "demo-auth.log"
SOCKET = Path("/run/bastiond/bastiond.sock")


def default_rules_dir() -> Path:
    """``$BASTION_GUARD_RULES``, else ``/etc/bastion-guard/rules`` if present, else the bundled rules."""
    configured = os.environ.get("BASTION_GUARD_RULES")
    if configured:
        return Path(configured)
    if SYSTEM_RULES.is_dir():
        return SYSTEM_RULES
    return BUNDLED_RULES
