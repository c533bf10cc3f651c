"""The whole detection path over a finished log: parse every line, feed the engine, keep a report.

This is what ``bastionctl test`` runs and what the benchmarks time. It takes no action: decisions are
collected, never enforced.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from bastion_guard.decisions import Decision
from bastion_guard.events import Event
from bastion_guard.parsing import LineParser, LineStatus
from bastion_guard.reading import iter_batches
from bastion_guard.rules import Engine, RuleSet, RuleStats

_UNMATCHED_SAMPLES = 50


@dataclass
class Report:
    """What a replay saw and concluded."""

    source: str
    lines: int = 0
    events_by_kind: Counter[str] = field(default_factory=Counter)
    events_by_outcome: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    unmatched: list[tuple[int, str]] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    rule_stats: dict[str, RuleStats] = field(default_factory=dict)
    parser: str = "python"  # which parser read the lines: "python" or "native (...)", with the reason

    @property
    def unmatched_total(self) -> int:
        """Lines of watched programs that matched no known message (format drift)."""
        return self.statuses[LineStatus.UNMATCHED.value]


def replay_stream(
    stream: BinaryIO,
    name: str,
    reference: float,
    ruleset: RuleSet,
    progress: Callable[[int], None] | None = None,
) -> Report:
    """Run ``stream`` through parser and engine; ``progress`` gets the byte offset now and then."""
    parser = LineParser(reference)
    engine = Engine(ruleset)
    report = Report(source=name)
    # Everything the loop touches is a local: it runs once per line, and a local costs less than a
    # global or an attribute.
    by_kind = report.events_by_kind
    by_outcome = report.events_by_outcome
    statuses = report.statuses
    decisions = report.decisions
    unmatched = report.unmatched
    parse = parser.parse
    feed = engine.feed
    unmatched_status = LineStatus.UNMATCHED
    count = 0  # the line number of the line being handled, the total after the loop
    for offset, texts in iter_batches(stream):
        for text in texts:
            count += 1
            result = parse(text, name, count)
            if isinstance(result, Event):
                by_kind[result.kind] += 1
                by_outcome[result.outcome] += 1
                found = feed(result)
                if found:
                    decisions.extend(found)
            else:
                statuses[result.value] += 1
                if result is unmatched_status and len(unmatched) < _UNMATCHED_SAMPLES:
                    unmatched.append((count, text))
        if progress is not None:
            progress(offset)  # once per chunk read (about a megabyte)
    report.lines = count
    report.rule_stats = engine.stats
    return report


def tally(report: Report, result: Event | LineStatus, number: int, line: str,
          feed: Callable[[Event], tuple[Decision, ...]]) -> None:
    """Count one parsed line into ``report`` and feed its event to the engine: the step of every replay for a
    line Python parsed (:func:`replay_stream` writes it out inline, since there it runs for every line)."""
    if isinstance(result, Event):
        report.events_by_kind[result.kind] += 1
        report.events_by_outcome[result.outcome] += 1
        found = feed(result)
        if found:
            report.decisions.extend(found)
    else:
        report.statuses[result.value] += 1
        if result is LineStatus.UNMATCHED and len(report.unmatched) < _UNMATCHED_SAMPLES:
            report.unmatched.append((number, line))


def replay_file(path: Path, ruleset: RuleSet, progress: Callable[[int], None] | None = None) -> Report:
    """:func:`replay_stream` over a file; years of traditional stamps are inferred from its mtime."""
    with path.open("rb") as stream:
        return replay_stream(stream, str(path), os.fstat(stream.fileno()).st_mtime, ruleset, progress)

