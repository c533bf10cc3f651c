"""GELF payloads: one mapping per record kind, spec-valid, level always set, hostile values kept as data."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion_guard.decisions import Decision, Evidence, Verdict
from bastion_guard.events import Event, Kind, Outcome
from bastion_guard.shipping.gelf import FIELD_NAME, TRUNCATION_MARK, encode, fit, to_gelf
from bastion_guard.shipping.records import Record, RecordKind, action_record, decision_record, event_record
from doubles.gelf_double import ProtocolViolationError, decode_payload, validate

EPOCH = 1795899600.123456


def _event(kind: Kind = Kind.AUTH_FAILURE, outcome: Outcome = Outcome.FAILURE, user: str | None = "admin",
           **fields: Any) -> Record:
    event = Event(EPOCH, 0, "bastion1", "sshd", 4242, kind, outcome, "203.0.113.7", 52100, user,
                  source="file:/var/log/auth.log", position=1234,
                  raw=f"2026-11-28T21:00:00Z bastion1 sshd[4242]: Failed password for {user} from 203.0.113.7",
                  **fields)
    return event_record(event, "bastion1")


def _decision(verdict: Verdict = Verdict.BAN, target: str = "203.0.113.7", user: str | None = None) -> Record:
    evidence = (Evidence(EPOCH - 5, "file:/var/log/auth.log", 100), Evidence(EPOCH, "file:/var/log/auth.log", 200))
    duration = 3600.0 if verdict is Verdict.BAN else None
    decision = Decision(verdict, "ssh-bruteforce", target, EPOCH, duration, 5, 2, "5 failures in 10m", evidence,
                        user=user)
    return decision_record(decision, "bastion1")


def _wire(record: Record) -> dict[str, Any]:
    """What a receiver parses: the payload through JSON, validated by the protocol test double."""
    payload, _ = decode_payload(encode(to_gelf(record)))
    return payload


def test_event_payload_has_the_spec_fields_and_flat_additional_fields() -> None:
    """A failed login: spec fields, ms timestamp, level warning, ECS-like underscored names, the raw line."""
    record = _event(method="password", user_valid=False)
    payload = _wire(record)
    assert payload["version"] == "1.1"
    assert payload["host"] == "bastion1"
    assert payload["timestamp"] == 1795899600.123
    assert payload["level"] == 4
    assert payload["short_message"] == 'sshd: auth failure for invalid user "admin" from 203.0.113.7 port 52100'
    assert payload["full_message"] == record.body["raw"]
    assert payload["_event_id"] == record.id
    assert payload["_event_kind"] == "auth_failure"
    assert payload["_event_outcome"] == "failure"
    assert payload["_source_ip"] == "203.0.113.7"
    assert payload["_source_port"] == 52100
    assert payload["_user_name"] == "admin"
    assert payload["_user_valid"] == "false"
    assert payload["_process_name"] == "sshd"
    assert payload["_process_pid"] == 4242
    assert payload["_ssh_method"] == "password"
    assert payload["_log_source"] == "file:/var/log/auth.log"
    assert payload["_log_offset"] == 1234
    assert "_id" not in payload


@pytest.mark.parametrize(
    ("record", "level"),
    [
        (_event(Kind.AUTH_FAILURE, Outcome.FAILURE), 4),
        (_event(Kind.AUTH_SUCCESS, Outcome.SUCCESS), 6),
        (_event(Kind.CONNECTION, Outcome.INFO, user=None), 6),
        (_decision(Verdict.BAN), 4),
        (_decision(Verdict.ALERT, target="root", user="root"), 1),
        (action_record(RecordKind.BAN, EPOCH, "b1", target="203.0.113.9", rule="manual", duration_secs=600), 4),
        (action_record(RecordKind.UNBAN, EPOCH, "b1", target="203.0.113.9", origin="bastionctl"), 5),
        (action_record(RecordKind.KEY, EPOCH, "b1", action="revoke", user="alice"), 5),
        (action_record(RecordKind.AUDIT, EPOCH, "b1", action="start"), 6),
        (action_record(RecordKind.AUDIT, EPOCH, "b1", action="reload", outcome="failure"), 3),
    ],
    ids=["failure", "success", "info", "ban", "alert", "manual-ban", "unban", "key", "audit", "audit-failed"],
)
def test_level_is_always_set_per_kind_and_verdict(record: Record, level: int) -> None:
    """``level`` is never left to Graylog's default (1/ALERT): failures 4, bans 4, alerts 1, info 6."""
    payload = _wire(record)
    assert payload["level"] == level
    assert payload["_record_kind"] == record.kind.value


def test_ban_decision_carries_rule_target_timeout_and_evidence() -> None:
    """A ban: who, for how long, which rule, and where the evidence lines are."""
    payload = _wire(_decision())
    assert payload["short_message"] == "ban 203.0.113.7 for 1h: rule ssh-bruteforce, offence 2: 5 failures in 10m"
    assert payload["_rule_name"] == "ssh-bruteforce"
    assert payload["_source_ip"] == "203.0.113.7"
    assert payload["_ban_timeout_seconds"] == 3600.0
    assert payload["_ban_expires"] == "2026-11-28T22:00:00.123Z"
    assert payload["_evidence_count"] == 2
    assert payload["full_message"].splitlines()[1:] == [
        "evidence: 2026-11-28T20:59:55.123Z file:/var/log/auth.log at 100",
        "evidence: 2026-11-28T21:00:00.123Z file:/var/log/auth.log at 200",
    ]


def test_network_target_is_a_network_field_and_user_target_is_neither() -> None:
    """``_source_ip`` holds one address only: a /64 ban goes to ``_source_network``, a user alert to neither."""
    network = _wire(_decision(target="2001:db8:1:2::/64"))
    assert network["_source_network"] == "2001:db8:1:2::/64"
    assert "_source_ip" not in network
    alert = _wire(_decision(Verdict.ALERT, target="root", user="root"))
    assert "_source_ip" not in alert and "_source_network" not in alert
    assert alert["_user_name"] == "root"


def test_action_fields_are_prefixed_so_they_cannot_collide_or_become_id() -> None:
    """Free-form action keys become ``_<kind>_<key>``: ``id`` cannot turn into ``_id``, odd characters into a
    name outside the spec; values that are not strings or numbers become text."""
    record = action_record(RecordKind.KEY, EPOCH, "b1", id=7, action="rotate", **{"key path": "/x"},
                           steps=["a", "b"], done=True, serial=2**70, nothing=None)
    payload = _wire(record)
    assert payload["_key_id"] == 7
    assert payload["_key_key_path"] == "/x"
    assert payload["_key_steps"] == '["a","b"]'
    assert payload["_key_done"] == "true"
    assert payload["_key_serial"] == str(2**70)
    assert "_key_nothing" not in payload
    assert "_id" not in payload


@settings(max_examples=200, deadline=None)
@given(user=st.text(min_size=1, max_size=120))
def test_hostile_user_names_stay_one_value(user: str) -> None:
    """Any user name (control characters, NUL, quotes, fake ``from <address>`` parts, any script) comes back
    as exactly the ``_user_name`` value; it adds no field, changes no address and never puts a NUL (the TCP
    frame end) in the encoded message."""
    record = _event(user=user)
    wire = encode(to_gelf(record))
    assert b"\0" not in wire
    payload, _ = decode_payload(wire)
    assert payload["_user_name"] == user
    assert payload["_source_ip"] == "203.0.113.7"
    assert set(payload) == set(_wire(_event(user="x")))


def test_fake_address_in_user_name_is_quoted_in_the_summary() -> None:
    """The summary quotes the name, so ``admin from 198.51.100.1 port 22`` cannot pass for the client."""
    payload = _wire(_event(user="admin from 198.51.100.1 port 22\n"))
    assert payload["short_message"] == (
        'sshd: auth failure for user "admin from 198.51.100.1 port 22\\n" from 203.0.113.7 port 52100'
    )
    assert payload["_source_ip"] == "203.0.113.7"


def test_unicode_survives_and_is_sent_as_utf8() -> None:
    """Non-ASCII text goes as UTF-8 (not ``\\u`` escapes) and decodes to the same text."""
    record = _event(user="пользователь-名前-🔑")
    wire = encode(to_gelf(record))
    assert "пользователь".encode() in wire
    assert decode_payload(wire)[0]["_user_name"] == "пользователь-名前-🔑"


def test_lone_surrogate_does_not_break_encoding() -> None:
    """A string no reader produces (a lone surrogate) is escaped rather than failing the batch."""
    payload = decode_payload(encode(to_gelf(_event(user="a\udcff"))))[0]
    assert payload["_user_name"].startswith("a")


@settings(max_examples=100, deadline=None)
@given(body=st.dictionaries(st.text(min_size=1, max_size=20),
                            st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(),
                                      st.lists(st.integers(), max_size=3)), max_size=8),
       kind=st.sampled_from([RecordKind.BAN, RecordKind.UNBAN, RecordKind.KEY, RecordKind.AUDIT]))
def test_any_action_body_makes_a_valid_message(body: dict[str, Any], kind: RecordKind) -> None:
    """Whatever keys and values an action record carries, the message passes the double's GELF checks."""
    record = Record("0" * 32, kind, EPOCH, {"bastion": "b1", **body})
    payload = to_gelf(record)
    validate(json.loads(encode(payload)))
    assert all(FIELD_NAME.match(name) for name in payload if name.startswith("_"))


def test_validator_refuses_what_graylog_refuses() -> None:
    """The double is not a rubber stamp: ``_id``, bad names, missing fields and structured values fail."""
    good = to_gelf(_event())
    for broken in ({**good, "_id": "x"}, {**good, "_bad name": 1}, {**good, "_obj": {"a": 1}},
                   {**good, "_flag": True}, {k: v for k, v in good.items() if k != "short_message"},
                   {**good, "version": "1.0"}, {**good, "level": 9}):
        with pytest.raises(ProtocolViolationError):
            validate(broken)


def test_fit_truncates_full_message_and_says_so() -> None:
    """Too big for the transport: ``full_message`` is cut and marked, the original size recorded, the
    structured fields untouched; ``None`` when even without it the message cannot fit."""
    payload = {**to_gelf(_event()), "full_message": "x" * 10_000}
    fitted = fit(payload, 2000, lambda p: len(encode(p)))
    assert fitted is not None
    assert len(encode(fitted)) <= 2000
    assert fitted["full_message"].endswith(TRUNCATION_MARK)
    assert fitted["_truncated_from_bytes"] == 10_000
    assert fitted["_user_name"] == payload["_user_name"]
    assert fit(payload, 20_000, lambda p: len(encode(p))) is payload
    assert fit(payload, 100, lambda p: len(encode(p))) is None


def test_a_record_without_a_real_time_still_encodes() -> None:
    """A NaN epoch cannot be JSON: the message goes without ``timestamp`` (the input stamps it) instead of
    failing to encode on every retry and blocking the sink."""
    record = Record("1" * 32, RecordKind.AUDIT, float("nan"), {"bastion": "b1", "action": "start"})
    payload = decode_payload(encode(to_gelf(record)))[0]
    assert "timestamp" not in payload
