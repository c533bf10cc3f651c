"""Helpers shared by the benchmarks: paths, the detection API import, RSS readings and JSON output.

Nothing here is timed. The benchmarks import this module by path (``bench/`` is not a package), so it
must stay free of imports from ``bastion_guard`` at module level: the API is imported lazily by
:func:`load_detection_api`, which reports a missing API instead of failing.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import resource
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
OUT_DIR = BENCH_DIR / "out"
RULES_DIR = REPO_ROOT / "rules"
GENERATOR = BENCH_DIR / "gen_authlog.py"

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, slots=True)
class DetectionApi:
    """The two calls the benchmarks need: ``replay_file(path, ruleset)`` and ``load_rules(directory)``."""

    replay_file: Callable[[Path, Any], Any]
    load_rules: Callable[[Path], Any]


def ensure_import_path() -> None:
    """Make ``bastion_guard`` importable from the checkout when it is not installed.

    An installed package (``pip install -e .``) wins; otherwise ``daemon/`` is put first on ``sys.path``.
    """
    daemon = str(REPO_ROOT / "daemon")
    if daemon in sys.path:
        return
    try:
        import bastion_guard  # noqa: F401, PLC0415
    except ImportError:
        sys.path.insert(0, daemon)


def load_detection_api() -> DetectionApi | str:
    """Import the detection API, or return ``"unavailable: <ImportError>"`` while it does not exist yet."""
    ensure_import_path()
    try:
        from bastion_guard.replay import replay_file  # noqa: PLC0415
        from bastion_guard.rules import load_rules  # noqa: PLC0415
    except ImportError as exc:
        return f"unavailable: {exc.__class__.__name__}: {exc}"
    return DetectionApi(replay_file=replay_file, load_rules=load_rules)


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (``ru_maxrss``, KiB on Linux), in bytes."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def current_rss_bytes() -> int:
    """Resident set size of this process right now, from ``/proc/self/statm`` (0 where it is missing)."""
    try:
        fields = Path("/proc/self/statm").read_text(encoding="ascii").split()
    except OSError:
        return 0
    return int(fields[1]) * _PAGE_SIZE


def mib(n_bytes: float) -> float:
    """Bytes to MiB."""
    return n_bytes / (1024 * 1024)


def machine_info() -> dict[str, Any]:
    """What a reader needs to compare numbers across machines."""
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
    }


def _cpu_model() -> str | None:
    try:
        with Path("/proc/cpuinfo").open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def source_tag(*parts: str | bytes) -> str:
    """Eight hex digits that change whenever the code producing a cached input changes."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
    return digest.hexdigest()[:8]


def run_generator(out: Path, args: list[str]) -> None:
    """Run ``gen_authlog.py`` in a child process, so its memory never counts in this process's RSS."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    subprocess.run([sys.executable, str(GENERATOR), *args, "--out", str(tmp)], check=True)
    tmp.replace(out)


def summarize_report(report: Any, limit: int = 12) -> dict[str, Any]:
    """Best-effort, JSON-safe summary of whatever ``replay_file`` returned (numbers and sizes only)."""
    summary: dict[str, Any] = {"type": type(report).__name__}
    fields: dict[str, Any] = {}
    if hasattr(report, "_asdict"):
        fields = dict(report._asdict())
    elif hasattr(report, "__dataclass_fields__"):
        fields = {name: getattr(report, name) for name in report.__dataclass_fields__}
    elif isinstance(report, dict):
        fields = dict(report)
    elif hasattr(report, "__dict__"):
        fields = dict(vars(report))
    for name, value in list(fields.items())[:limit]:
        if isinstance(value, bool | int | float | str) and len(str(value)) <= 80:
            summary[str(name)] = value
        elif hasattr(value, "__len__"):
            summary[f"len({name})"] = len(value)
    return summary


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON (paths and other objects as strings), creating the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
