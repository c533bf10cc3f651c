"""``make install`` / ``make uninstall`` into a staging DESTDIR, as a package build or an operator would run them.

The staged unit points at this environment's bastiond (``BINDIR``), so ``systemd-analyze verify`` can check
the commands exist. An upgrade (a second install) keeps the operator's configuration and rules; uninstall
removes what install placed and nothing the operator owns.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MAKE = shutil.which("make")
ANALYZE = shutil.which("systemd-analyze")
BINDIR = Path(sys.executable).parent

pytestmark = pytest.mark.skipif(MAKE is None, reason="make is not installed")


def _make(target: str, destdir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    assert MAKE is not None
    return subprocess.run([MAKE, "-C", str(REPO), target, f"DESTDIR={destdir}", "PREFIX=/usr", f"BINDIR={BINDIR}",
                           *extra], capture_output=True, text=True, check=False, timeout=120)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_install_places_unit_config_rules_and_docs(tmp_path: Path) -> None:
    """Every file lands where the variables say, with tight modes on the configuration."""
    result = _make("install", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    unit = tmp_path / "usr/lib/systemd/system/bastiond.service"
    text = unit.read_text()
    assert f"ExecStart={BINDIR}/bastiond\n" in text and "/usr/local/" not in text
    assert "Documentation=file:///usr/share/doc/bastion-guard/README.md" in text
    config = tmp_path / "etc/bastion-guard/bastiond.yaml"
    assert _mode(config) == 0o640 and config.read_text() == (REPO / "packaging/bastiond.yaml").read_text()
    shipped = sorted(path.name for path in (REPO / "rules").glob("*.yaml"))
    assert sorted(path.name for path in (tmp_path / "etc/bastion-guard/rules").iterdir()) == shipped
    assert sorted(path.name for path in (tmp_path / "usr/share/bastion-guard/rules").iterdir()) == shipped
    assert (tmp_path / "usr/share/bastion-guard/prometheus/bastion-guard.rules.yml").is_file()
    examples = sorted(path.name for path in (tmp_path / "usr/share/bastion-guard/systemd").iterdir())
    assert examples == sorted(path.name for path in (REPO / "systemd/bastiond.service.d").glob("*.conf.example"))
    assert not (tmp_path / "usr/lib/systemd/system/bastiond.service.d").exists(), "drop-ins are examples, not active"
    assert (tmp_path / "usr/share/doc/bastion-guard/configuration.md").is_file()
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed (package systemd)")
def test_installed_unit_verifies(tmp_path: Path) -> None:
    """``systemd-analyze verify`` has nothing to say about the installed unit."""
    assert ANALYZE is not None
    assert _make("install", tmp_path).returncode == 0
    unit = tmp_path / "usr/lib/systemd/system/bastiond.service"
    result = subprocess.run([ANALYZE, "verify", str(unit)], capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "bastiond.service" not in result.stderr, result.stderr


def test_installed_configuration_passes_check_config(tmp_path: Path) -> None:
    """The installed (all-comments) configuration and rules pass ``bastiond --check-config``."""
    assert _make("install", tmp_path).returncode == 0
    etc = tmp_path / "etc/bastion-guard"
    result = subprocess.run([str(BINDIR / "bastiond"), "--check-config", "--config", str(etc / "bastiond.yaml"),
                             "--rules", str(etc / "rules")], capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_upgrade_keeps_operator_files_and_uninstall_leaves_them(tmp_path: Path) -> None:
    """A second install keeps an edited config and rules; uninstall removes only what install owns."""
    assert _make("install", tmp_path).returncode == 0
    config = tmp_path / "etc/bastion-guard/bastiond.yaml"
    config.write_text("firewall: {backend: dry-run}\n")
    custom = tmp_path / "etc/bastion-guard/rules/local.yaml"
    custom.write_text("# the operator's rule\n")
    again = _make("install", tmp_path)
    assert again.returncode == 0, again.stderr
    assert "kept" in again.stdout
    assert config.read_text() == "firewall: {backend: dry-run}\n" and custom.exists()
    removed = _make("uninstall", tmp_path)
    assert removed.returncode == 0, removed.stderr
    assert not (tmp_path / "usr/lib/systemd/system/bastiond.service").exists()
    assert not (tmp_path / "usr/share/bastion-guard").exists()
    assert not (tmp_path / "usr/share/doc/bastion-guard").exists()
    assert config.exists() and custom.exists()
