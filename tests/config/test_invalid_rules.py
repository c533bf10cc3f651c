"""Broken rule files: every problem named with file, line, column and key; nothing half-loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion_guard.errors import ConfigError
from bastion_guard.rules import load_rule_files

CASES = {
    "unknown key": ("kind: rule\nname: a\nmatch: {kinds: [auth_failure]}\nthreshold: {count: 1}\nbantime: 5\n",
                    "r.yaml:5:1: bantime: unknown key"),
    "wrong type": ("kind: rule\nname: a\nmatch: {kinds: [auth_failure]}\nthreshold: {count: five}\n",
                   "r.yaml:4:13: threshold.count: must be a whole number, not text"),
    "unknown kind": ("kind: rule\nname: a\nmatch: {kinds: [failed_pw]}\nthreshold: {count: 1}\n",
                     "r.yaml:3:9: match.kinds: unknown event kind 'failed_pw'"),
    "bad duration": ("kind: rule\nname: a\nmatch: {kinds: [auth_failure]}\nthreshold: {count: 2, window_secs: 10x}\naction: alert\n",
                     "r.yaml:4:23: threshold.window_secs: '10x' is not a duration"),
    "bad cidr": ("kind: allowlist\nname: t\nnetworks: [10.0.0.300/8]\n",
                 "r.yaml:3:1: networks: '10.0.0.300/8' is not an address or CIDR network"),
    "yaml syntax": ("kind: rule\nname: [a\n", "r.yaml:3:1:"),
    "duplicate key": ("kind: rule\nname: a\nname: b\n", "r.yaml:3:1: name: key is repeated"),
    "user ban": ("kind: rule\nname: a\nmatch: {kinds: [auth_failure]}\nkey: user\nthreshold: {count: 1}\n"
                 "ban: {duration_secs: 1m}\n", "key: a rule keyed by user can only alert"),
    "missing threshold": ("kind: rule\nname: a\nmatch: {kinds: [auth_failure]}\naction: alert\n",
                          "threshold: is required"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_problem_is_located(tmp_path: Path, case: str) -> None:
    """The error names file, line, column and key of the mistake."""
    text, expected = CASES[case]
    path = tmp_path / "r.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_rule_files([path])
    assert expected in str(caught.value).replace(str(tmp_path) + "/", "")


def test_all_problems_are_reported_together(tmp_path: Path) -> None:
    """Two mistakes in two files are both reported, and no rule is returned."""
    (tmp_path / "a.yaml").write_text("kind: rule\nname: a\nmatch: {kinds: [nope]}\nthreshold: {count: 1}\naction: alert\n")
    (tmp_path / "b.yaml").write_text(
        "kind: rule\nname: b\nmatch: {kinds: [auth_failure]}\nthreshold: {count: 0}\naction: alert\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_rule_files(sorted(tmp_path.glob("*.yaml")))
    assert len(caught.value.problems) == 2
