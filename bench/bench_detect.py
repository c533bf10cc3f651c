#!/usr/bin/env python3
"""Throughput of the detection path (parse + rules, no actions) against two pure-Python floors.

All three run in this one process, on the same file, after one untimed warm-up pass that also puts the
file in the page cache:

* floor 1: iterate the file's lines in binary mode and count them (the cost of reading at all);
* floor 2: the same loop, decoding each line and running one precompiled sshd regex ``search`` on it
  (what a single-pattern Python filter costs);
* ours (python): ``bastion_guard.replay.replay_file(path, ruleset)`` with the repository's ``rules/``, the
  pure-Python reference path;
* ours (native): the same through ``bastion_guard.native.replay_stream_native``, the Rust hot path, when
  the library is built (otherwise the row says why not). Both run in the same process and hour as the
  floors, interleaved run by run.

Each is timed ``--repeat`` times with ``time.perf_counter``; the best run counts. Results go to stdout and
``bench/out/detect.json``. Nothing here asserts a time: the numbers are for reading, not for CI.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import common

FAILED_PASSWORD = re.compile(r"Failed password for (?:invalid user )?(.*) from (\S+) port (\d+) ssh2$")

# Reference figures measured elsewhere (2-core Debian 12 machine); printed for context, never measured here.
REFERENCE_SSHGUARD = "sshguard sshg-parser (C, flex/bison)"
REFERENCE_FAIL2BAN = "fail2ban-regex sshd (Python)"
REFERENCE_FLOOR2 = "Python one-regex loop (floor 2 there)"
REFERENCE_LINES_PER_S = {REFERENCE_SSHGUARD: 529_000, REFERENCE_FAIL2BAN: 38_000, REFERENCE_FLOOR2: 2_900_000}


@dataclass(frozen=True, slots=True)
class Timing:
    """Best-of-R wall time of one path over the whole file."""

    name: str
    best_s: float
    runs_s: list[float]
    lines: int

    @property
    def lines_per_s(self) -> float:
        """Lines per second of the best run."""
        return self.lines / self.best_s if self.best_s > 0 else 0.0


def floor_iterate(path: Path) -> int:
    """Floor 1: read the file line by line in binary mode; return the line count."""
    n = 0
    with path.open("rb") as fh:
        for _ in fh:
            n += 1
    return n


def floor_regex(path: Path) -> int:
    """Floor 2: floor 1 plus a UTF-8 decode and one precompiled regex search per line; return the hits."""
    hits = 0
    search = FAILED_PASSWORD.search
    with path.open("rb") as fh:
        for raw in fh:
            if search(raw.decode("utf-8", "replace")) is not None:
                hits += 1
    return hits


def best_of(name: str, fn: Callable[[], Any], repeat: int, lines: int) -> tuple[Timing, Any]:
    """Run ``fn`` ``repeat`` times; keep every wall time and the last result."""
    runs: list[float] = []
    result: Any = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        runs.append(time.perf_counter() - t0)
    return Timing(name, min(runs), runs, lines), result


def input_file(args: argparse.Namespace) -> Path:
    """The file to measure: ``--file``, or a cached generated log under ``bench/out/``."""
    if args.file is not None:
        return Path(args.file)
    tag = common.source_tag(common.GENERATOR.read_bytes())  # a changed generator never reuses a stale file
    path = common.OUT_DIR / f"authlog-{args.lines}-{args.format}-s{args.seed}-{tag}.log"
    if not path.exists():
        print(f"generating {path.relative_to(common.REPO_ROOT)} ...", file=sys.stderr)
        common.run_generator(path, ["--lines", str(args.lines), "--format", args.format, "--seed", str(args.seed)])
    return path


OURS_PYTHON = "ours (python): parse + rules"
OURS_NATIVE = "ours (native): parse + rules"
OURS_NATIVE_PARSER = "ours (native parser, python rules)"


def measure_ours(path: Path, rules: Path, repeat: int, lines: int) -> dict[str, Any]:
    """Time both detection paths, run by run interleaved, or explain why one cannot run."""
    api = common.load_detection_api()
    if isinstance(api, str):
        return {"status": api}
    t0 = time.perf_counter()
    ruleset = api.load_rules(rules)
    load_s = time.perf_counter() - t0
    from bastion_guard.native import load, replay_stream_native  # noqa: PLC0415

    library, description = load()
    paths: dict[str, Callable[[], Any]] = {OURS_PYTHON: lambda: api.replay_file(path, ruleset)}
    if library is not None:

        def native(count_natively: bool = True) -> Any:
            with path.open("rb") as stream:
                return replay_stream_native(
                    stream, str(path), path.stat().st_mtime, ruleset, library=library, count_natively=count_natively
                )

        paths[OURS_NATIVE] = native
        paths[OURS_NATIVE_PARSER] = lambda: native(count_natively=False)
    runs: dict[str, list[float]] = {name: [] for name in paths}
    reports: dict[str, Any] = {}
    for _ in range(repeat):
        for name, fn in paths.items():
            start = time.perf_counter()
            reports[name] = fn()
            runs[name].append(time.perf_counter() - start)
    timings = {name: Timing(name, min(times), times, lines) for name, times in runs.items()}
    same = None
    if library is not None:
        first = _comparable(reports[OURS_PYTHON])
        same = all(_comparable(report) == first for report in reports.values())
        description = reports[OURS_NATIVE].parser
    return {
        "status": "ok",
        "timings": timings,
        "native": description,
        "same_report": same,
        "load_rules_s": load_s,
        "report": common.summarize_report(reports[OURS_PYTHON]),
    }


def _comparable(report: Any) -> tuple[Any, ...]:
    """What must be equal across the paths: decisions, counters and rule stats."""
    return report.decisions, dict(report.events_by_kind), dict(report.statuses), report.rule_stats


def best_ours(ours: dict[str, Any]) -> Timing:
    """The faster of the paths measured (native when built)."""
    timings: dict[str, Timing] = ours["timings"]
    return timings.get(OURS_NATIVE, timings[OURS_PYTHON])


def ratio_text(ours: float, floor: float) -> str:
    """``0.123 (8.1x slower)``: ours as a fraction of a floor's speed, and the same as a slowdown."""
    if ours <= 0 or floor <= 0:
        return "n/a"
    r = ours / floor
    return f"{r:.3f} ({1 / r:.1f}x slower)" if r < 1 else f"{r:.3f} ({r:.1f}x faster)"


def print_table(path: Path, size: int, timings: list[Timing], ours: dict[str, Any]) -> None:
    """The human-readable result."""
    lines = timings[0].lines
    print(f"input: {path}  ({lines:,} lines, {size / 1e6:.1f} MB)")
    print(f"{'path':<40} {'best s':>9} {'lines/s':>12}   runs (s)")
    rows = [*timings, *ours["timings"].values()] if ours["status"] == "ok" else timings
    for t in rows:
        runs = " ".join(f"{r:.3f}" for r in t.runs_s)
        print(f"{t.name:<40} {t.best_s:>9.3f} {t.lines_per_s:>12,.0f}   {runs}")
    if ours["status"] != "ok":
        print(f"{OURS_PYTHON:<40} {ours['status']}")
        return
    f1, f2 = timings[0].lines_per_s, timings[1].lines_per_s
    print(f"load_rules: {ours['load_rules_s']:.3f} s (not in the timed runs); report: {ours['report']}")
    print(f"native path: {ours['native']}; same report on every path: {ours['same_report']}")
    for name, timing in ours["timings"].items():
        print(f"{name}: /floor2 = {ratio_text(timing.lines_per_s, f2)}; /floor1 = {ratio_text(timing.lines_per_s, f1)}")


def print_reference(ours_lps: float | None, floor2_lps: float) -> dict[str, Any]:
    """Reference figures and ours against them; these are from another machine and are not measured here.

    Besides the raw ratios, ours is also scaled to the reference machine by the ratio of the two floor-2
    loops (there / here), an estimate that cancels most of the CPU difference.
    """
    print("\nreference figures (2-core Debian 12 machine; reference, not measured here):")
    scale = REFERENCE_LINES_PER_S[REFERENCE_FLOOR2] / floor2_lps if floor2_lps > 0 else 0.0
    scaled = ours_lps * scale if ours_lps else None
    out: dict[str, Any] = {}
    for name, lps in REFERENCE_LINES_PER_S.items():
        ratio = ratio_text(ours_lps, lps) if ours_lps else "n/a (ours unavailable)"
        print(f"  {name:<40} ~{lps:>10,} lines/s   ours/ref = {ratio}  [reference, not measured here]")
        out[name] = {
            "lines_per_s": lps,
            "ours_over_ref": ours_lps / lps if ours_lps else None,
            "ours_scaled_over_ref": scaled / lps if scaled else None,
        }
    if scaled:
        print(f"  machine scale (floor 2 there / here) = {scale:.2f}: ours ~{scaled:,.0f} lines/s on that machine "
              f"(estimate): {scaled / REFERENCE_LINES_PER_S[REFERENCE_SSHGUARD]:.2f}x sshguard, "
              f"{scaled / REFERENCE_LINES_PER_S[REFERENCE_FAIL2BAN]:.1f}x fail2ban-regex")  # fmt: skip
    return {"figures": out, "machine_scale": scale, "ours_scaled_lines_per_s": scaled}


def to_json(
    args: argparse.Namespace, path: Path, size: int, timings: list[Timing], ours: dict[str, Any]
) -> dict[str, Any]:
    """Everything printed, as data."""
    results: dict[str, Any] = {t.name: {**asdict(t), "lines_per_s": t.lines_per_s} for t in timings}
    ratios: dict[str, float | None] = {"ours_over_floor2": None, "ours_over_floor1": None}
    if ours["status"] == "ok":
        for t in ours["timings"].values():
            results[t.name] = {**asdict(t), "lines_per_s": t.lines_per_s, "load_rules_s": ours["load_rules_s"]}
        results[OURS_PYTHON]["report"] = ours["report"]
        results["native"] = {"library": ours["native"], "same_report": ours["same_report"]}
        t = best_ours(ours)
        ratios = {
            "ours_over_floor2": t.lines_per_s / timings[1].lines_per_s,
            "ours_over_floor1": t.lines_per_s / timings[0].lines_per_s,
        }
    else:
        results[OURS_PYTHON] = {"status": ours["status"]}
    return {
        "benchmark": "detect",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": common.machine_info(),
        "input": {
            "path": str(path),
            "lines": timings[0].lines,
            "bytes": size,
            "generated": args.file is None,
        },
        "repeat": args.repeat,
        "results": results,
        "ratios": ratios,
        "peak_rss_bytes": common.peak_rss_bytes(),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    p.add_argument("--lines", type=int, default=1_000_000, help="lines of the generated log (default 1,000,000)")
    p.add_argument("--file", type=Path, default=None, help="measure this file instead of a generated one")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per path; the best counts (default 3)")
    p.add_argument("--format", choices=("rfc3339", "traditional"), default="rfc3339")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--rules", type=Path, default=common.RULES_DIR, help="rules directory (default: rules/)")
    p.add_argument("--json", type=Path, default=common.OUT_DIR / "detect.json")
    args = p.parse_args(argv)
    if args.repeat < 1 or args.lines < 1:
        p.error("--repeat and --lines must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Measure, print, write JSON."""
    args = parse_args(argv)
    path = input_file(args)
    size = path.stat().st_size
    lines = floor_iterate(path)  # warm-up: page cache, and the true line count
    t1, _ = best_of("floor 1: iterate lines (binary)", lambda: floor_iterate(path), args.repeat, lines)
    t2, hits = best_of("floor 2: decode + 1 regex/line", lambda: floor_regex(path), args.repeat, lines)
    ours = measure_ours(path, args.rules, args.repeat, lines)
    print_table(path, size, [t1, t2], ours)
    print(f"(floor 2 matched {hits:,} 'Failed password' lines)")
    ours_lps = best_ours(ours).lines_per_s if ours["status"] == "ok" else None
    data = to_json(args, path, size, [t1, t2], ours)
    data["floor2_hits"] = hits
    data["reference"] = {"note": "reference, not measured here", **print_reference(ours_lps, t2.lines_per_s)}
    common.write_json(args.json, data)
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
