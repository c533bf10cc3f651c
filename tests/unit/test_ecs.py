"""Records -> ECS documents: the fields Elastic's own content reads, our extras under bastion.*, data streams."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

from bastion_guard.decisions import Decision, Evidence, Verdict
from bastion_guard.events import Event
from bastion_guard.parsing import LineParser
from bastion_guard.shipping.ecs import data_stream, to_document
from bastion_guard.shipping.records import RecordKind, action_record, decision_record, event_record, iso_time

FAILED = ("2025-03-04T10:15:02.123456+00:00 bastion1 sshd[4242]: Failed password for invalid user admin "
          "from 203.0.113.7 port 54676 ssh2")
ACCEPTED = ("2025-03-04T10:16:40.001122+00:00 bastion1 sshd[4311]: Accepted publickey for alice from "
            "198.51.100.23 port 50522 ssh2: ED25519 SHA256:8nisd74JOfd9pbwnqd/f/D6D6qSl9lEc0CFglfW/FZE")


def _event_doc(parser: LineParser, line: str) -> dict[str, Any]:
    event = parser.parse(line, "file:/var/log/auth.log", 81234)
    assert isinstance(event, Event), event
    return to_document(event_record(event, "bastion1"), "default")


def test_failed_login_matches_the_conventions_document(parser: LineParser) -> None:
    """The failed-password line gives the document of docs/conventions.md 1.2 (b), user name without a space."""
    doc = _event_doc(parser, FAILED)
    assert doc["@timestamp"] == "2025-03-04T10:15:02.123Z"
    assert doc["ecs"] == {"version": "8.11.0"}
    assert doc["data_stream"] == {"type": "logs", "dataset": "bastion.auth", "namespace": "default"}
    event = doc["event"]
    assert (event["kind"], event["category"], event["type"], event["action"], event["outcome"]) == (
        "event", ["authentication"], ["info"], "ssh_login", "failure")
    assert event["original"] == FAILED and event["dataset"] == "bastion.auth" and len(event["id"]) == 32
    assert doc["message"] == "Failed password for invalid user admin from 203.0.113.7 port 54676 ssh2"
    assert doc["source"] == {"ip": "203.0.113.7", "address": "203.0.113.7", "port": 54676}
    assert doc["user"] == {"name": "admin"}
    assert doc["related"] == {"ip": ["203.0.113.7"], "user": ["admin"]}
    assert doc["process"] == {"name": "sshd", "pid": 4242}
    assert doc["log"] == {"file": {"path": "/var/log/auth.log"}, "offset": 81234}
    assert doc["host"] == {"name": "bastion1", "hostname": "bastion1"}
    bastion = doc["bastion"]
    assert bastion["ssh"] == {"method": "password", "invalid_user": True}


def test_success_is_authentication_and_session_with_the_key(parser: LineParser) -> None:
    """Accepted publickey: success, both categories, key type and fingerprint under bastion.ssh."""
    doc = _event_doc(parser, ACCEPTED)
    event = doc["event"]
    assert (event["category"], event["outcome"]) == (["authentication", "session"], "success")
    bastion = doc["bastion"]
    assert bastion["ssh"]["fingerprint"] == "SHA256:8nisd74JOfd9pbwnqd/f/D6D6qSl9lEc0CFglfW/FZE"
    assert bastion["ssh"]["key_type"] == "ED25519"


def test_ban_decision_is_an_alert_in_the_audit_stream() -> None:
    """A ban: event.kind alert, intrusion_detection/denied, ip-banned, rule.name, source.ip, bastion.ban.*."""
    decision = Decision(Verdict.BAN, "sshd-bruteforce", "203.0.113.7", 1741083302.0, 600.0, 5, 1, "5 failures",
                        (Evidence(1741083300.0, "file:/var/log/auth.log", 10),))
    record = decision_record(decision, "bastion1")
    assert data_stream(record, "prod") == "logs-bastion.audit-prod"
    doc = to_document(record, "prod")
    event = doc["event"]
    assert (event["kind"], event["category"], event["type"], event["action"]) == (
        "alert", ["intrusion_detection", "network"], ["denied"], "ip-banned")
    assert doc["rule"] == {"name": "sshd-bruteforce", "ruleset": "bastiond"}
    assert doc["source"] == {"ip": "203.0.113.7", "address": "203.0.113.7"}
    assert doc["bastion"]["ban"]["timeout_seconds"] == 600.0
    assert doc["bastion"]["ban"]["expires"] == "2025-03-04T10:25:02.000Z"


def test_network_ban_and_user_alert_never_put_a_non_address_in_source_ip() -> None:
    """source.ip is mapped as ip: a /64 or a user name there would be rejected by the cluster."""
    network = Decision(Verdict.BAN, "r", "2001:db8:1:2::/64", 1.0, 60.0, 5, 1, "x", ())
    alert = Decision(Verdict.ALERT, "root-login", "root", 1.0, None, 1, 1, "x", (), user="root")
    assert "source" not in to_document(decision_record(network, "b"), "default")
    doc = to_document(decision_record(alert, "b"), "default")
    assert "source" not in doc and doc["user"] == {"name": "root"}
    # A user name of digits only (brute-force lists are full of "123456") is not an address either.
    digits = Decision(Verdict.ALERT, "user-spray", "123456", 1.0, None, 9, 1, "x", (), user="123456")
    assert "source" not in to_document(decision_record(digits, "b"), "default")


def test_manual_unban_is_an_event_in_the_audit_stream() -> None:
    """bastionctl unban: ip-unbanned, allowed, with the address."""
    record = action_record(RecordKind.UNBAN, 5.0, "bastion1", target="198.51.100.9", origin="bastionctl")
    doc = to_document(record, "default")
    assert data_stream(record, "default") == "logs-bastion.audit-default"
    assert (doc["event"]["action"], doc["event"]["type"]) == ("ip-unbanned", ["allowed"])
    assert doc["source"]["ip"] == "198.51.100.9"


def test_iso_time_is_datetimes_text_with_milliseconds() -> None:
    """``@timestamp`` formatting is cached per second; the text must stay what datetime writes, rounding
    included (half to even on the microsecond, carried into the next second at .9999995)."""
    rng = random.Random(4)  # noqa: S311 (test data, not cryptography)
    epochs = [rng.uniform(0, 4e9) for _ in range(20_000)]
    epochs += [1764360138 + step / 1e6 for step in range(-1500, 1500)]
    epochs += [1764360138.9999995, 1764360138.0000005, 1764360138.9995, 0.0]
    for epoch in epochs:
        expected = datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        assert iso_time(epoch) == expected, epoch
