"""``bastionctl test``: run the whole detection path over a log and say what it would do.

Our fail2ban-regex: lines read, events per kind, watched-program lines that matched no known message
(so format drift is visible, never silent), and every decision with its evidence. Nothing is enforced.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from bastion_guard.cli.common import EXIT_OK, EXIT_USAGE, fail, open_log
from bastion_guard.decisions import Decision
from bastion_guard.defaults import default_rules_dir
from bastion_guard.durations import format_duration
from bastion_guard.errors import ConfigError
from bastion_guard.native import replay_auto
from bastion_guard.replay import Report
from bastion_guard.rules import load_rules

_SHOWN_UNMATCHED = 10
_SHOWN_EVIDENCE = 12


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``test`` on the root parser."""
    parser = subparsers.add_parser(
        "test",
        help="run parser and rules over a log and report (no actions)",
        description="Replay a log through the parser and the rules engine, as bastiond would, and report "
        "events, unrecognised lines and the bans/alerts that would be issued. Nothing is enforced.",
    )
    parser.add_argument("logfile", help="log file to replay, or - for standard input")
    parser.add_argument("--rules", type=Path, help="rules directory (default: installed or bundled rules)")
    parser.add_argument("-o", "--output", choices=("human", "json"), default="human", help="output format")
    parser.add_argument("--no-progress", action="store_true", help="never draw a progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Replay ``args.logfile`` and print the report."""
    rules_dir = args.rules or default_rules_dir()
    try:
        ruleset = load_rules(rules_dir)
    except ConfigError as error:
        print(f"bastionctl: invalid rules in {rules_dir}:", file=sys.stderr)
        for problem in error.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_USAGE
    started = time.perf_counter()
    try:
        with open_log(args.logfile) as (stream, reference, name):
            progress = None if args.no_progress else _progress_bar(stream.fileno(), sys.stderr)
            report = replay_auto(stream, name, reference, ruleset, progress)
            if progress is not None:
                progress(-1)
    except OSError as error:
        return fail(f"cannot read {args.logfile}: {error.strerror or error}")
    elapsed = time.perf_counter() - started
    if args.output == "json":
        json.dump(_as_json(report, elapsed, str(rules_dir)), sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        _print_human(report, elapsed, str(rules_dir), sys.stdout)
    return EXIT_OK


def _progress_bar(fd: int, out: TextIO) -> Any:
    """A callback drawing a bar on a terminal, or ``None`` when there is none or the size is unknown."""
    try:
        total = os.fstat(fd).st_size
    except OSError:
        return None
    if not out.isatty() or total < 8 << 20:
        return None

    def draw(offset: int) -> None:
        if offset < 0:
            out.write("\r" + " " * 60 + "\r")
            return
        share = min(offset / total, 1.0)
        filled = int(share * 40)
        out.write(f"\r[{'#' * filled}{'.' * (40 - filled)}] {share:6.1%}")
        out.flush()

    return draw


def decision_json(decision: Decision) -> dict[str, Any]:
    """A decision as JSON-ready data (also what bastiond prints)."""
    return {
        "verdict": decision.verdict.value,
        "rule": decision.rule,
        "target": decision.target,
        "time": datetime.fromtimestamp(decision.epoch, UTC).isoformat(),
        "duration_secs": decision.duration_secs,
        "offence": decision.offence,
        "count": decision.count,
        "reason": decision.reason,
        "user": decision.user,
        "evidence_lines": [evidence.position for evidence in decision.evidence],
    }


def _as_json(report: Report, elapsed: float, rules: str) -> dict[str, Any]:
    return {
        "source": report.source,
        "rules": rules,
        "lines": report.lines,
        "seconds": round(elapsed, 3),
        "parser": report.parser,
        "events": sum(report.events_by_kind.values()),
        "events_by_kind": dict(sorted(report.events_by_kind.items())),
        "events_by_outcome": dict(sorted(report.events_by_outcome.items())),
        "lines_without_event": dict(sorted(report.statuses.items())),
        "unmatched": [{"line": number, "text": text} for number, text in report.unmatched],
        "decisions": [decision_json(decision) for decision in report.decisions],
        "rules_stats": {
            name: {"events": stats.events, "decisions": stats.decisions, "allowlisted": stats.allowlisted,
                   "while_banned": stats.while_banned}
            for name, stats in report.rule_stats.items()
        },
    }


def _print_human(report: Report, elapsed: float, rules: str, out: TextIO) -> None:
    rate = report.lines / elapsed if elapsed > 0 else 0.0
    print(f"Log:    {report.source}", file=out)
    print(f"Rules:  {rules}", file=out)
    print(f"Lines:  {report.lines:,} read in {elapsed:.2f} s ({rate:,.0f} lines/s)", file=out)
    print(f"Parser: {report.parser}", file=out)
    print(f"Events: {sum(report.events_by_kind.values()):,}", file=out)
    # By count, then name: the same order whichever parser filled the counter.
    for kind, count in sorted(report.events_by_kind.items(), key=lambda item: (-item[1], item[0])):
        print(f"  {kind:<24} {count:>10,}", file=out)
    print("Lines without an event:", file=out)
    for status, count in sorted(report.statuses.items()):
        print(f"  {status:<24} {count:>10,}", file=out)
    if report.unmatched_total:
        print(f"Unrecognised lines of watched programs: {report.unmatched_total:,} (first "
              f"{min(_SHOWN_UNMATCHED, len(report.unmatched))}):", file=out)
        for number, text in report.unmatched[:_SHOWN_UNMATCHED]:
            print(f"  line {number}: {text[:200]}", file=out)
    bans = [d for d in report.decisions if d.verdict.value == "ban"]
    alerts = [d for d in report.decisions if d.verdict.value == "alert"]
    print(f"Decisions: {len(bans):,} bans, {len(alerts):,} alerts", file=out)
    for decision in report.decisions:
        lines = [str(evidence.position) for evidence in decision.evidence[:_SHOWN_EVIDENCE]]
        more = ", ..." if len(decision.evidence) > _SHOWN_EVIDENCE else ""
        length = f" for {format_duration(decision.duration_secs)}" if decision.duration_secs else ""
        when = datetime.fromtimestamp(decision.epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")
        print(f"  {when} {decision.verdict.value:<5} {decision.target:<28} {decision.rule}{length}: "
              f"{decision.reason} (lines {', '.join(lines)}{more})", file=out)
