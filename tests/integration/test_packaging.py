"""Release artefacts: sdist and wheel build, install into a fresh venv and run; ``make install`` stages a
unit that ``systemd-analyze verify`` accepts.

The build runs offline (``python -m build --no-isolation``) on a copy of the source tree, so nothing is
written into the checkout. The fresh venv gets the wheel with ``--no-deps``; its dependencies (PyYAML,
prometheus_client, watchdog, shtab) come from this environment through a ``.pth`` line, which adds their
directory without running this environment's own ``.pth`` files (the editable install of the checkout),
and the tests assert that ``bastion_guard`` is imported from the fresh venv.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import venv
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bastion_guard import __version__

REPO = Path(__file__).resolve().parents[2]
ANALYZE = shutil.which("systemd-analyze")
MAKE = shutil.which("make")
TOP_LEVEL_IGNORED = {".venv", ".git", "state", "build", "dist", "bench"}  # only at the top: there is a package "state"
ANYWHERE_IGNORED = shutil.ignore_patterns("__pycache__", "*.egg-info", ".mypy_cache", ".ruff_cache", ".pytest_cache",
                                          ".hypothesis", "target", "_native*.so")  # the native library is rebuilt
CARGO = shutil.which("cargo")


def _copy_ignore(directory: str, names: list[str]) -> set[str]:
    ignored = set(ANYWHERE_IGNORED(directory, names))
    if Path(directory) == REPO:
        ignored |= TOP_LEVEL_IGNORED & set(names)
    return ignored


@dataclass(frozen=True)
class Release:
    """The built artefacts and a fresh venv with the wheel installed."""

    sdist: Path
    wheel: Path
    venv: Path

    def run(self, program: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """Run an installed entry point with a clean environment (no rules override, no PYTHONPATH)."""
        env = {key: value for key, value in os.environ.items()
               if key not in {"BASTION_GUARD_RULES", "PYTHONPATH", "VIRTUAL_ENV"}}
        return subprocess.run([str(self.venv / "bin" / program), *args], capture_output=True, text=True,
                              check=False, timeout=120, cwd=cwd, env=env)


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Release]:
    """Build sdist + wheel from a copy of the tree; install the wheel into a fresh venv."""
    if importlib.util.find_spec("build") is None:
        pytest.skip("the 'build' package is not installed (pip install -e '.[test]')")
    root = tmp_path_factory.mktemp("release")
    source = root / "source"
    shutil.copytree(REPO, source, ignore=_copy_ignore, symlinks=True)
    built = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(root / "dist"),
                            str(source)], capture_output=True, text=True, check=False, timeout=600)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    [sdist] = (root / "dist").glob("*.tar.gz")
    [wheel] = (root / "dist").glob("*.whl")
    fresh = root / "venv"
    venv.EnvBuilder(with_pip=True).create(fresh)
    python = fresh / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    dependencies = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (Path(site) / "test-dependencies.pth").write_text("".join(f"{path}\n" for path in sorted(dependencies)))
    installed = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", str(wheel)],
                               capture_output=True, text=True, check=False, timeout=300)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    yield Release(sdist, wheel, fresh)


@pytest.mark.skipif(CARGO is None, reason="cargo is not installed: the wheel is built without the native parser")
def test_wheel_carries_the_native_parser(release: Release) -> None:
    """With Rust installed, the wheel ships the native library and the installed package loads it."""
    loaded = release.run("python", "-c", "from bastion_guard.native import load; print(load()[1])")
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.startswith("native ("), loaded.stdout


def test_wheel_builds_and_runs_without_rust(tmp_path: Path) -> None:
    """The native library is optional: with no cargo on PATH the wheel still builds, without it."""
    if importlib.util.find_spec("build") is None:
        pytest.skip("the 'build' package is not installed (pip install -e '.[test]')")
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=_copy_ignore, symlinks=True)
    no_rust = ":".join(part for part in os.environ.get("PATH", "").split(":")
                       if part and not (Path(part) / "cargo").exists())
    env = {**os.environ, "PATH": no_rust}
    built = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path / "dist"),
                            str(source)], capture_output=True, text=True, check=False, timeout=600, env=env)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    [wheel] = (tmp_path / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert "bastion_guard/native/replay.py" in names
    assert not [name for name in names if "_native" in name], names


def test_wheel_is_imported_from_the_fresh_venv(release: Release) -> None:
    """The package the entry points run is the installed wheel, not the checkout."""
    where = release.run("python", "-c", "import bastion_guard; print(bastion_guard.__file__)")
    assert where.returncode == 0, where.stderr
    assert where.stdout.startswith(str(release.venv)), where.stdout


def test_entry_points_report_their_version(release: Release) -> None:
    """``bastionctl --version`` and ``bastiond --version`` work from the installed scripts."""
    for program in ("bastionctl", "bastiond"):
        result = release.run(program, "--version")
        assert (result.returncode, result.stdout) == (0, f"{program} {__version__}\n"), result.stderr


def test_check_config_with_the_bundled_rules(release: Release, tmp_path: Path) -> None:
    """``bastiond --check-config`` validates the rules shipped inside the wheel (package data)."""
    bundled = release.run("python", "-c", "from bastion_guard.defaults import BUNDLED_RULES as r; print(r)")
    rules = Path(bundled.stdout.strip())
    assert rules.is_relative_to(release.venv) and sorted(path.name for path in rules.glob("*.yaml")) == [
        "alerts.yaml", "allowlist.yaml", "sshd.yaml"]
    empty = tmp_path / "bastiond.yaml"
    empty.write_text("# all defaults\n")
    result = release.run("bastiond", "--check-config", "--config", str(empty), "--rules", str(rules), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"rules in {rules} are valid" in result.stdout


def test_demo_log_is_packaged_and_replays(release: Release, tmp_path: Path) -> None:
    """The bundled demo auth.log ships in the wheel, and ``bastionctl test`` bans from it with the bundled rules."""
    located = release.run("python", "-c", "from bastion_guard.defaults import DEMO_LOG as d; print(d)")
    demo_log = Path(located.stdout.strip())
    assert demo_log.is_relative_to(release.venv) and demo_log.stat().st_size > 0
    rules = demo_log.parent / "rules"
    result = release.run("bastionctl", "test", str(demo_log), "--rules", str(rules), "-o", "json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert '"ban"' in result.stdout


def test_completion_works_from_the_installed_package(release: Release) -> None:
    """shtab is a declared dependency: the installed bastionctl prints a completion script."""
    result = release.run("bastionctl", "completion", "bash")
    assert result.returncode == 0, result.stderr
    assert "complete" in result.stdout and "bastionctl" in result.stdout


def test_sdist_carries_what_make_install_needs(release: Release) -> None:
    """The tarball holds the unit and its drop-in examples, rules, alert rules, docs, default config, Makefile
    and tests."""
    with tarfile.open(release.sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    expected = {"Makefile", "systemd/bastiond.service", "systemd/bastiond.service.d/shipping.conf.example",
                "systemd/bastiond.service.d/keys.conf.example", "rules/sshd.yaml", "prometheus/bastion-guard.rules.yml",
                "docs/configuration.md", "packaging/bastiond.yaml", "daemon/bastion_guard/defaults/rules/sshd.yaml",
                "docker-compose.yml", "tests/conftest.py"}
    assert expected <= names, expected - names
    assert not any(name.startswith("demo/keys/id_") for name in names)


@pytest.mark.skipif(ANALYZE is None or MAKE is None, reason="needs systemd-analyze (systemd) and make")
def test_make_install_from_the_sdist_stages_a_verifiable_unit(release: Release, tmp_path: Path) -> None:
    """Unpack the sdist, ``make install DESTDIR=...`` against the fresh venv: the unit verifies, the config runs."""
    assert ANALYZE is not None and MAKE is not None
    with tarfile.open(release.sdist) as archive:
        archive.extractall(tmp_path, filter="data")
    [unpacked] = [path for path in tmp_path.iterdir() if path.is_dir()]
    destdir = tmp_path / "staging"
    bindir = release.venv / "bin"
    made = subprocess.run([MAKE, "-C", str(unpacked), "install", f"DESTDIR={destdir}", "PREFIX=/usr",
                           f"BINDIR={bindir}"], capture_output=True, text=True, check=False, timeout=120)
    assert made.returncode == 0, made.stdout + made.stderr
    unit = destdir / "usr/lib/systemd/system/bastiond.service"
    assert f"ExecStart={bindir}/bastiond\n" in unit.read_text()
    verified = subprocess.run([ANALYZE, "verify", str(unit)], capture_output=True, text=True, check=False, timeout=120)
    assert verified.returncode == 0, verified.stderr
    assert "bastiond.service" not in verified.stderr, verified.stderr
    config = destdir / "etc/bastion-guard/bastiond.yaml"
    rules = destdir / "etc/bastion-guard/rules"
    checked = release.run("bastiond", "--check-config", "--config", str(config), "--rules", str(rules))
    assert checked.returncode == 0, checked.stdout + checked.stderr
