"""sweep() forgets the same windows whether it stops early (windows kept in time order) or scans them all.

``_Rule.in_order`` lets sweep() stop at the first window still in its time span; these tests hold it to
the full scan it replaces: the same decisions, statistics and tracked keys after every event, for a log
in time order and for one whose clock jumps back now and then (which ends the ordering for good).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bastion_guard.events import Event
from bastion_guard.parsing import LineParser
from bastion_guard.rules import Engine, load_rules

_REPO = Path(__file__).resolve().parents[2]


def _events(seed: int) -> list[Event]:
    log = subprocess.run(
        [sys.executable, str(_REPO / "bench" / "gen_authlog.py"), "--lines", "20000", "--seed", str(seed),
         "--out", "-"],
        capture_output=True, check=True,
    ).stdout.decode("ascii")  # fmt: skip
    parser = LineParser(1795899600.0)
    results = (parser.parse(line, "src", number) for number, line in enumerate(log.splitlines(), 1))
    return [result for result in results if isinstance(result, Event)]


def _full_scan(engine: Engine) -> Engine:
    for rule in engine._rules:
        rule.in_order = False
    return engine


@pytest.mark.parametrize("jumbled", [False, True])
def test_early_stopping_sweep_forgets_what_the_full_scan_forgets(jumbled: bool) -> None:
    events = _events(5)
    if jumbled:  # now and then an event from the past (a second log source, a clock step back)
        for index in range(len(events) // 2, len(events) - 1, 997):
            swap = index + index % 37 + 1
            if swap < len(events):
                events[index], events[swap] = events[swap], events[index]
    ruleset = load_rules(_REPO / "rules")
    ordered, scanning = Engine(ruleset), _full_scan(Engine(ruleset))
    for event in events:
        assert ordered.feed(event) == scanning.feed(event)
        assert ordered.tracked_keys == scanning.tracked_keys
    assert ordered.stats == scanning.stats
    # in order, sweep() stopped early for every rule (the test compares that path); jumbled, it ended
    assert all(rule.in_order for rule in ordered._rules) is not jumbled
