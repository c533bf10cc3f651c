"""Shared fixtures: the repository's paths, and a parser anchored at a fixed time."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

import pytest

from bastion_guard.parsing import LineParser

REPO = Path(__file__).resolve().parent.parent
RULES_DIR = REPO / "rules"
# 2026-11-28T21:00:00Z: a fixed "now" so year inference is deterministic.
REFERENCE = 1795899600.0


@pytest.fixture
def parser() -> LineParser:
    """A fresh parser whose traditional stamps are read in UTC, anchored at :data:`REFERENCE`."""
    return LineParser(REFERENCE, UTC)
