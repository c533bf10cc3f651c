"""The rules engine reads only ``ENGINE_FIELDS`` of an event: blanking every other field changes nothing.

The native replay relies on this (it builds the engine's events with those fields only). Two ways to hold
the engine to it: a static one (every ``event.<field>`` in the rules package is listed) and a behavioural
one (whole generated logs fed with full and with blanked events give the same decisions and statistics).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from bastion_guard.events import Event
from bastion_guard.parsing import LineParser
from bastion_guard.rules import Engine, load_rules
from bastion_guard.rules.engine import ENGINE_FIELDS

_REPO = Path(__file__).resolve().parents[2]
_RULES_PACKAGE = _REPO / "daemon" / "bastion_guard" / "rules"


def test_every_field_the_rules_package_reads_is_listed() -> None:
    read = {
        name
        for path in _RULES_PACKAGE.glob("*.py")
        for name in re.findall(r"\bevent\.([a-z_]+)", path.read_text(encoding="utf-8"))
    }
    assert read <= ENGINE_FIELDS | {"_replace"}, read - ENGINE_FIELDS
    assert not re.search(r"\bevent\[", "".join(p.read_text(encoding="utf-8") for p in _RULES_PACKAGE.glob("*.py")))


def _blanked(event: Event) -> Event:
    defaults = {name: (0 if name == "utc_offset" else "" if name == "program" else 1 if name == "repeat" else None)
                for name in Event._fields if name not in ENGINE_FIELDS}
    defaults["raw"] = ""
    return event._replace(**defaults)


def test_blanked_events_give_the_same_decisions() -> None:
    log = subprocess.run(
        [sys.executable, str(_REPO / "bench" / "gen_authlog.py"), "--lines", "20000", "--seed", "9", "--out", "-"],
        capture_output=True, check=True,
    ).stdout.decode("ascii")
    parser = LineParser(1795899600.0)
    ruleset = load_rules(_REPO / "rules")
    full, blank = Engine(ruleset), Engine(ruleset)
    decisions = 0
    for number, line in enumerate(log.splitlines(), 1):
        event = parser.parse(line, "src", number)
        if isinstance(event, Event):
            found = full.feed(event)
            assert blank.feed(_blanked(event)) == found
            decisions += len(found)
    assert full.stats == blank.stats
    assert decisions > 10
