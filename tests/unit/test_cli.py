"""bastionctl as a user runs it: the parse contract, test reports and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LOG = (
    "2026-11-28T20:02:18.1+00:00 vm sshd[1]: Invalid user x from 192.0.2.1 port 5\n"
    "2026-11-28T20:02:18.2+00:00 vm CRON[2]: pam_unix(cron:session): session opened\n"
    "2026-11-28T20:02:19.1+00:00 vm sshd[1]: Failed password for invalid user x from 192.0.2.1 port 5 ssh2\n"
)


def bastionctl(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run bastionctl in a subprocess, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "bastion_guard.cli.bastionctl", *args],
        input=stdin, capture_output=True, text=True, check=False, cwd=REPO,
    )


def test_parse_contract() -> None:
    """One JSON object per event, contract keys first and in order; lines without events print nothing."""
    result = bastionctl("parse", "-", "-o", "jsonl", stdin=LOG)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [list(record)[:6] for record in records] == [["line", "kind", "outcome", "ip", "port", "user"]] * 2
    assert [(r["line"], r["kind"], r["outcome"], r["ip"], r["port"], r["user"]) for r in records] == [
        (1, "invalid_user", "failure", "192.0.2.1", 5, "x"),
        (3, "auth_failure", "failure", "192.0.2.1", 5, "x"),
    ]


def test_test_command_json_report(tmp_path: Path) -> None:
    """``bastionctl test -o json`` reports lines, kinds, statuses and decisions with evidence lines."""
    log = tmp_path / "auth.log"
    log.write_text("".join(
        f"2026-11-28T20:02:{10 + i:02d}+00:00 vm sshd[{i}]: Failed password for root from 203.0.113.7 "
        f"port {1000 + i} ssh2\n" for i in range(5)
    ) + "2026-11-28T20:03:00+00:00 vm sshd[9]: Something new in OpenSSH 11\n")
    result = bastionctl("test", str(log), "-o", "json", "--rules", str(REPO / "rules"))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["lines"] == 6
    assert report["events_by_kind"] == {"auth_failure": 5}
    assert report["unmatched"] == [{"line": 6, "text": "2026-11-28T20:03:00+00:00 vm sshd[9]: Something new in "
                                                      "OpenSSH 11"}]
    (ban,) = [d for d in report["decisions"] if d["verdict"] == "ban"]
    assert (ban["rule"], ban["target"], ban["evidence_lines"]) == ("sshd-bruteforce", "203.0.113.7", [1, 2, 3, 4, 5])


def test_exit_codes(tmp_path: Path) -> None:
    """Usage errors and broken rules exit 2, an unreadable file exits 1, each with a clear message."""
    assert bastionctl().returncode == 2
    assert bastionctl("parse", "--bogus").returncode == 2
    missing = bastionctl("parse", str(tmp_path / "nope.log"))
    assert missing.returncode == 1
    assert "cannot read" in missing.stderr
    (tmp_path / "bad.yaml").write_text("kind: rule\nname: a\n")
    broken = bastionctl("test", str(tmp_path / "bad.yaml"), "--rules", str(tmp_path))
    assert broken.returncode == 2
    assert "bad.yaml:1:1: match: is required" in broken.stderr
