#!/usr/bin/env python3
"""Where the detection path spends its time: cumulative stages of ``replay_stream``, timed in one process.

``bench_detect.py`` gives one number for the whole path; this splits it, so that work on speed starts from
the stage that costs the most. Each stage runs the previous one plus one more piece, over the same file
held in memory (no disk reads in any timed run):

1. ``read``: ``reading.iter_batches`` over the bytes (chunking, ASCII decode, split into lines);
2. ``+ parse``: ``LineParser.parse`` on every line, results dropped;
3. ``+ engine``: ``Engine.feed`` for every event (decisions kept);
4. ``replay_stream``: the real thing (adds the report's counters and samples).

The cost of a stage is its time minus the previous stage's, per line. Each stage runs ``--repeat`` times,
interleaved (stage 1, 2, 3, 4, then again), and the best run of each counts: on a shared machine the
interleaving keeps one burst of load from landing on a single stage. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import common


def stage_functions(data: bytes, rules: Path) -> list[tuple[str, Callable[[], int]]]:
    """The four cumulative stages, each a function returning the number of lines it saw."""
    common.ensure_import_path()
    # Imported here, after the path is set up (the scripts also run without an installed package).
    from bastion_guard.events import Event  # noqa: PLC0415
    from bastion_guard.parsing import LineParser  # noqa: PLC0415
    from bastion_guard.reading import iter_batches  # noqa: PLC0415
    from bastion_guard.replay import replay_stream  # noqa: PLC0415
    from bastion_guard.rules import Engine, load_rules  # noqa: PLC0415

    ruleset = load_rules(rules)

    def read() -> int:
        count = 0
        for _offset, texts in iter_batches(io.BytesIO(data)):
            for _text in texts:
                count += 1
        return count

    def parse() -> int:
        parse_line = LineParser(0.0).parse
        count = 0
        for _offset, texts in iter_batches(io.BytesIO(data)):
            for text in texts:
                count += 1
                parse_line(text, "bench", count)
        return count

    def engine() -> int:
        parse_line = LineParser(0.0).parse
        feed = Engine(ruleset).feed
        decisions = []
        count = 0
        for _offset, texts in iter_batches(io.BytesIO(data)):
            for text in texts:
                count += 1
                result = parse_line(text, "bench", count)
                if isinstance(result, Event):
                    found = feed(result)
                    if found:
                        decisions.extend(found)
        return count

    def replay() -> int:
        return replay_stream(io.BytesIO(data), "bench", 0.0, ruleset).lines

    return [("read", read), ("+ parse", parse), ("+ engine", engine), ("replay_stream", replay)]


def measure(stages: list[tuple[str, Callable[[], int]]], repeat: int) -> dict[str, list[float]]:
    """Wall times of every stage, interleaved ``repeat`` times."""
    runs: dict[str, list[float]] = {name: [] for name, _ in stages}
    for _ in range(repeat):
        for name, run in stages:
            t0 = time.perf_counter()
            run()
            runs[name].append(time.perf_counter() - t0)
    return runs


def main(argv: list[str] | None = None) -> int:
    """Measure the stages, print a table, write JSON."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    p.add_argument("--file", type=Path, required=True, help="an auth.log (e.g. one bench_detect.py generated)")
    p.add_argument("--repeat", type=int, default=3, help="interleaved runs; the best of each stage counts")
    p.add_argument("--rules", type=Path, default=common.RULES_DIR, help="rules directory (default: rules/)")
    p.add_argument("--json", type=Path, default=common.OUT_DIR / "stages.json")
    args = p.parse_args(argv)
    if args.repeat < 1:
        p.error("--repeat must be >= 1")
    data = args.file.read_bytes()
    stages = stage_functions(data, args.rules)
    lines = stages[0][1]()  # untimed warm-up, and the line count
    runs = measure(stages, args.repeat)
    print(f"input: {args.file} ({lines:,} lines, {len(data) / 1e6:.1f} MB), best of {args.repeat} interleaved runs")
    print(f"{'stage':<16} {'best s':>8} {'lines/s':>12} {'us/line':>8} {'stage us/line':>14}   runs (s)")
    previous = 0.0
    results: dict[str, Any] = {}
    for name, _ in stages:
        best = min(runs[name])
        own = (best - previous) / lines * 1e6
        print(f"{name:<16} {best:>8.3f} {lines / best:>12,.0f} {best / lines * 1e6:>8.2f} {own:>14.2f}   "
              + " ".join(f"{r:.3f}" for r in runs[name]))  # fmt: skip
        results[name] = {"best_s": best, "runs_s": runs[name], "lines_per_s": lines / best, "stage_us_per_line": own}
        previous = best
    common.write_json(args.json, {"benchmark": "stages", "machine": common.machine_info(), "input": str(args.file),
                                  "lines": lines, "results": results})  # fmt: skip
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
