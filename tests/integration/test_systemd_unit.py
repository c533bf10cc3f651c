"""The shipped systemd unit: systemd-analyze accepts it, and its sandbox exposure stays at 2.0 or lower."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "bastiond.service"
ANALYZE = shutil.which("systemd-analyze")
pytestmark = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed (package systemd)")


def _installed_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this environment's bastiond, as an install would place it."""
    bastiond = Path(sys.executable).parent / "bastiond"
    if not bastiond.exists():
        pytest.skip(f"bastiond is not installed next to {sys.executable}")
    copy = tmp_path / "bastiond.service"
    copy.write_text(UNIT.read_text().replace("/usr/local/bin/bastiond", str(bastiond)))
    return copy


def test_unit_verifies(tmp_path: Path) -> None:
    """``systemd-analyze verify`` reports nothing about the unit."""
    assert ANALYZE is not None
    result = subprocess.run([ANALYZE, "verify", str(_installed_copy(tmp_path))], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "bastiond.service" not in result.stderr, result.stderr


def test_unit_exposure_is_low(tmp_path: Path) -> None:
    """``systemd-analyze security --offline=yes`` rates the unit 2.0 or lower (least privilege)."""
    assert ANALYZE is not None
    result = subprocess.run(
        [ANALYZE, "security", "--offline=yes", str(_installed_copy(tmp_path))],
        capture_output=True, text=True, check=False,
    )
    match = re.search(r"Overall exposure level for bastiond\.service: ([0-9.]+)", result.stdout)
    assert match is not None, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0, result.stdout
