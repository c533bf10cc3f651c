"""A real sshd, real hostile logins, a real rsyslogd: the parser must never blame an attacker-chosen address.

Three real OpenSSH sshd on 127.0.0.1 (UsePAM no, UsePAM yes, MaxAuthTries 1) log through syslog() into a
private rsyslogd that writes a Debian 12 auth.log (RFC 3339) and a traditional one. A real ssh client (via
sshpass) logs in with user names built to look like the suffix of sshd's messages (log-injection.md), long
names that make sshd cut the line so that a decoy ends it, and raw TCP clients put decoys in the banner,
the key exchange offer and the disconnect reason. The only real client is 127.0.0.1, so any other address
the parser reports was chosen by the attacker.

What sshd 9.2p1 actually wrote (see realparts.py for the details): every message is cut at exactly 500
characters, so a line is its syslog header plus at most 500 characters (554 in the corpus' RFC 3339 file,
537 in its traditional one); "Invalid user" and "Failed password" lines keep at most 100 bytes of the name
and are never cut; preauth lines naming the user are escaped twice and do get cut, so their real
"127.0.0.1 port N [preauth]" suffix is gone and an attacker-chosen " 6.6.6.6 port 22 [preauth]" can end them.

The same checks run without root on the captured corpus in tests/corpus (capture_corpus.py made it).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import realparts as rp

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "tests" / "corpus"
CORPUS_FILES = {
    "rfc3339": CORPUS / "real_sshd_rfc3339.log",
    "traditional": CORPUS / "real_sshd_traditional.log",
}
CORPUS_USER = "bgit_operator"  # capture_corpus.py rewrites the random temp user name to this one

# The real suffixes, anchored at the end: a line that matches was not cut and names the real client.
_FAILED = re.compile(r"^Failed \S+ for (?:invalid user )?.* from 127\.0\.0\.1 port (?P<port>\d+) ssh2(?::.*)?$")
_INVALID = re.compile(r"^Invalid user .* from 127\.0\.0\.1 port (?P<port>\d+)$")
_ACCEPTED = re.compile(
    r"^Accepted publickey for (?P<user>\S+) from 127\.0\.0\.1 port (?P<port>\d+) ssh2: "
    r"ED25519 (?P<fingerprint>SHA256:[A-Za-z0-9+/]+)$"
)
_CONNECTION = re.compile(r"^Connection from 127\.0\.0\.1 port (?P<port>\d+) on 127\.0\.0\.1 port (?P<server>\d+) ")
_LISTENING = re.compile(r"^Server listening on 127\.0\.0\.1 port (?P<port>\d+)\.$")


# ----------------------------------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class Parsed:
    """A captured log and what ``bastionctl parse`` made of it."""

    path: Path
    lines: list[rp.LogLine]
    events: list[dict[str, Any]]

    def events_on(self, number: int) -> list[dict[str, Any]]:
        """The events the parser reported for line ``number``."""
        return [event for event in self.events if event["line"] == number]

    def show(self, event: dict[str, Any]) -> str:
        """An event with its line, for assertion messages."""
        return f"line {event['line']}: {self.lines[event['line'] - 1].text!r}\n    -> {event}"


def parser_env() -> dict[str, str]:
    """The environment for the parser CLI: this checkout's daemon/ first, when it is there."""
    env = dict(os.environ)
    daemon = REPO / "daemon"
    if (daemon / "bastion_guard").is_dir():
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(daemon), env.get("PYTHONPATH")) if p)
    return env


def run_parser(path: Path) -> Parsed:
    """``python -m bastion_guard.cli.bastionctl parse PATH -o jsonl``, one JSON object per output line."""
    done = subprocess.run(
        [sys.executable, "-m", "bastion_guard.cli.bastionctl", "parse", str(path), "-o", "jsonl"],
        capture_output=True,
        text=True,
        env=parser_env(),
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"bastionctl parse {path} exited {done.returncode}: {done.stderr}"
    events = [json.loads(row) for row in done.stdout.splitlines() if row.strip()]
    lines = rp.read_log(path)
    for event in events:
        assert 1 <= event["line"] <= len(lines), f"event for a line that does not exist: {event}"
    return Parsed(path, lines, events)


def real_ports(parsed: Parsed) -> set[int]:
    """Every port sshd itself reported: its listening ports and each client's source port."""
    ports = set()
    for line in parsed.lines:
        if match := _CONNECTION.match(line.msg):
            ports |= {int(match["port"]), int(match["server"])}
        elif match := _LISTENING.match(line.msg):
            ports.add(int(match["port"]))
    return ports


def foreign_addresses(parsed: Parsed) -> list[str]:
    """Events that report any address but the one real client."""
    return [parsed.show(e) for e in parsed.events if e.get("ip") not in (None, rp.LOOPBACK)]


def foreign_ports(parsed: Parsed) -> list[str]:
    """Events that report a port sshd never used (an attacker-chosen "port 22", "port 1", ...)."""
    ports = real_ports(parsed)
    return [parsed.show(e) for e in parsed.events if e.get("port") is not None and e["port"] not in ports]


def unattributed_failures(parsed: Parsed) -> tuple[int, list[str]]:
    """Failed/Invalid lines sshd wrote whole that lack a failure event naming 127.0.0.1.

    The event's port may be null (an attribution through the connection may not know it) but never a
    port other than the one the line ends with. A cut ``Failed``/``Invalid user`` line (none seen with
    sshd 9.2) only has to stay unattributed or name 127.0.0.1: :func:`foreign_addresses` covers it.
    Returns (lines checked, problems).
    """
    checked, problems = 0, []
    for line in parsed.lines:
        if line.program != "sshd" or not line.msg.startswith(("Failed ", "Invalid user ")):
            continue
        kind, pattern = ("invalid_user", _INVALID) if line.msg.startswith("Invalid") else ("auth_failure", _FAILED)
        match = pattern.match(line.msg)
        if match is None:
            continue
        checked += 1
        wanted = {"kind": kind, "outcome": "failure", "ip": rp.LOOPBACK}
        ports = (None, int(match["port"]))
        events = parsed.events_on(line.number)
        if not any(all(e.get(k) == v for k, v in wanted.items()) and e.get("port") in ports for e in events):
            problems.append(
                f"line {line.number}: {line.text!r}\n    wanted {wanted}, port in {ports}\n    got {events}"
            )
    return checked, problems


def success_problems(parsed: Parsed, user: str, fingerprint: str | None = None) -> tuple[int, list[str]]:
    """Check that each genuine ``Accepted publickey`` line is an auth_success of ``user``, and no other is.

    ``fingerprint`` defaults to the one sshd wrote on the line; the parser's is compared when it reports
    one. Returns (genuine Accepted lines, problems).
    """
    genuine: dict[int, re.Match[str]] = {}
    for line in parsed.lines:
        if line.program == "sshd" and (match := _ACCEPTED.match(line.msg)) and match["user"] == user:
            genuine[line.number] = match
    problems = []
    for number, match in genuine.items():
        wanted: dict[str, Any] = {
            "kind": "auth_success",
            "outcome": "success",
            "ip": rp.LOOPBACK,
            "user": user,
        }
        wanted["port"] = int(match["port"])
        expected_fingerprint = fingerprint or match["fingerprint"]
        events = parsed.events_on(number)
        if not any(
            all(event.get(key) == value for key, value in wanted.items())
            and event.get("fingerprint", expected_fingerprint) == expected_fingerprint
            for event in events
        ):
            problems.append(f"line {number}: {parsed.lines[number - 1].text!r}\n    wanted {wanted}\n    got {events}")
    problems += [
        "auth_success outside a genuine Accepted line: " + parsed.show(event)
        for event in parsed.events
        if event["kind"] == "auth_success" and event["line"] not in genuine
    ]
    return len(genuine), problems


def cut_lines(parsed: Parsed) -> list[rp.LogLine]:
    """The sshd lines whose message reached the syslog limit (their end may be attacker text)."""
    return [line for line in parsed.lines if line.program == "sshd" and len(line.msg) >= rp.SYSLOG_MSG_LIMIT]


# ----------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", params=["rfc3339", "traditional"])
def live(request: pytest.FixtureRequest, sshd_capture: rp.Capture) -> Parsed:
    """The parser's events for this module's capture, in each syslog file format."""
    path = sshd_capture.rfc3339_log if request.param == "rfc3339" else sshd_capture.traditional_log
    return run_parser(path)


@pytest.fixture(scope="module", params=sorted(CORPUS_FILES))
def corpus(request: pytest.FixtureRequest) -> Parsed:
    """The parser's events for the committed corpus captured from a real sshd, in each format."""
    path = CORPUS_FILES[request.param]
    if not path.exists():
        pytest.fail(f"{path} is missing: run tests/integration/capture_corpus.py as root")
    return run_parser(path)


# ----------------------------------------------------------------------------------------------- the capture


@pytest.mark.root
@pytest.mark.sshd
@pytest.mark.rsyslog
def test_every_connection_reached_the_log(sshd_capture: rp.Capture) -> None:
    """Each client action is one logged connection, and each refused or accepted as planned."""
    for name, server in sshd_capture.servers.items():
        assert rp.connections_logged(sshd_capture.rfc3339_log, server) == sshd_capture.expected_connections[name]
    for planned, result in zip(sshd_capture.plan, sshd_capture.results, strict=True):
        if planned.label.endswith("publickey-success"):
            assert result.returncode == 0, result
        elif planned.label.split(":")[1].startswith("raw-"):
            assert planned.label.endswith("raw-silent") or result.output.startswith("SSH-2.0-OpenSSH_"), result
        else:
            assert result.returncode in {5, 255}, result  # refused (5: sshpass saw a 2nd prompt); never 0
    rfc, trad = rp.read_log(sshd_capture.rfc3339_log), rp.read_log(sshd_capture.traditional_log)
    assert [line.msg for line in rfc] == [line.msg for line in trad], "both files carry the same messages"


@pytest.mark.root
@pytest.mark.sshd
@pytest.mark.rsyslog
def test_sshd_logged_every_hostile_name_as_sent(sshd_capture: rp.Capture) -> None:
    """sshd wrote each hostile name as sent (escaped, cut at ':' and 100 bytes) in an Invalid user line."""
    messages = {line.msg for line in rp.read_log(sshd_capture.rfc3339_log)}
    for planned in sshd_capture.plan:
        if planned.hostile is None:
            continue
        pattern = re.compile(
            rf"Invalid user {re.escape(rp.logged_name(planned.hostile.name))} from 127\.0\.0\.1 port \d+"
        )
        assert any(pattern.fullmatch(msg) for msg in messages), planned.label


@pytest.mark.root
@pytest.mark.sshd
@pytest.mark.rsyslog
def test_long_names_cut_the_real_address_off(sshd_capture: rp.Capture) -> None:
    """sshd cut each long-name preauth line at 500 characters where we aimed, leaving a decoy at its end."""
    lines = rp.read_log(sshd_capture.rfc3339_log)
    assert max(len(line.msg) for line in lines) == rp.SYSLOG_MSG_LIMIT
    messages = {line.msg for line in lines}
    for planned in sshd_capture.plan:
        if planned.hostile is None or not planned.hostile.label.startswith("cut-"):
            continue
        prefix = (
            "Disconnecting invalid user "
            if "disconnecting" in planned.hostile.label
            else "Connection closed by invalid user "
        )
        expected = (prefix + rp.logged_name(planned.hostile.name, limit=187, preauth=True))[: rp.SYSLOG_MSG_LIMIT]
        assert len(expected) == rp.SYSLOG_MSG_LIMIT
        assert expected in messages, planned.label
        assert "127.0.0.1" not in expected and "6.6.6" in expected[-30:]
    assert any(
        m.startswith("Received disconnect from 127.0.0.1 port ")
        and m.endswith(" 6.6.6.6 port 22 [preauth]")
        and len(m) == rp.SYSLOG_MSG_LIMIT
        for m in messages
    )


# ----------------------------------------------------------------------------------------------- the parser


@pytest.mark.root
@pytest.mark.sshd
@pytest.mark.rsyslog
def test_no_event_names_an_injected_address(live: Parsed) -> None:
    """No event from a log full of hostile names reports any address but the real client 127.0.0.1."""
    bad = foreign_addresses(live)
    assert not bad, f"{len(bad)} events blame an attacker-chosen address:\n" + "\n".join(bad)


@pytest.mark.root
@pytest.mark.sshd
@pytest.mark.rsyslog
def test_no_event_names_an_injected_port(live: Parsed) -> None:
    """Every port the parser reports is one sshd really used, never a "port 22" from a user name."""
    bad = foreign_ports(live)
    assert not bad, f"{len(bad)} events carry an attacker-chosen port:\n" + "\n".join(bad)


@pytest.mark.root
@pytest.mark.sshd
@pytest.mark.rsyslog
def test_every_failed_and_invalid_line_is_attributed(live: Parsed) -> None:
    """Every whole Failed password / Invalid user line yields a failure event for 127.0.0.1."""
    checked, problems = unattributed_failures(live)
    assert checked > 50
    assert not problems, f"{len(problems)} of {checked} failure lines not attributed:\n" + "\n".join(problems)


@pytest.mark.root
@pytest.mark.sshd
@pytest.mark.rsyslog
def test_publickey_login_is_the_only_success(live: Parsed, sshd_capture: rp.Capture) -> None:
    """Both real publickey logins are auth_success events of the temp user; no hostile name is a success."""
    genuine, problems = success_problems(live, sshd_capture.user.name, sshd_capture.user.fingerprint)
    assert genuine == 2
    assert not problems, "\n".join(problems)


@pytest.mark.root
@pytest.mark.sshd
@pytest.mark.rsyslog
def test_cut_lines_are_never_attributed_to_their_visible_tail(live: Parsed) -> None:
    """Lines cut at 500 characters yield no address or the real one, whatever their visible end says."""
    cut = cut_lines(live)
    assert len(cut) >= 15
    bad = [live.show(e) for line in cut for e in live.events_on(line.number) if e.get("ip") not in (None, rp.LOOPBACK)]
    assert not bad, "\n".join(bad)


# ----------------------------------------------------------------------------------------------- the corpus


def test_corpus_no_event_names_an_injected_address(corpus: Parsed) -> None:
    """On the committed corpus, no event reports an address but 127.0.0.1 or a port sshd never used."""
    bad = foreign_addresses(corpus) + foreign_ports(corpus)
    assert not bad, f"{len(bad)} events blame attacker-chosen text:\n" + "\n".join(bad)


def test_corpus_failed_and_invalid_lines_are_attributed(corpus: Parsed) -> None:
    """On the committed corpus, every whole Failed/Invalid line yields a failure event for 127.0.0.1."""
    checked, problems = unattributed_failures(corpus)
    assert checked > 50
    assert not problems, f"{len(problems)} of {checked} failure lines not attributed:\n" + "\n".join(problems)


def test_corpus_publickey_login_is_the_only_success(corpus: Parsed) -> None:
    """On the committed corpus, the two genuine publickey logins are the only auth_success events."""
    genuine, problems = success_problems(corpus, CORPUS_USER)
    assert genuine == 2
    assert not problems, "\n".join(problems)
