"""The templated bulk lines of parsed-line records against the reference: ``ecs.to_document`` + orjson.

Byte for byte (key order included) and parsed back, over every event kind, each with and without its
optional fields, hostile user names, IPv6 and client host names, non-file sources, and the real sshd corpus.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import orjson
import pytest

from bastion_guard.events import Event, Kind, Outcome
from bastion_guard.parsing import LineParser
from bastion_guard.shipping.ecs import data_stream, to_document
from bastion_guard.shipping.ecs_ndjson import event_lines
from bastion_guard.shipping.records import Record, event_id, event_record, record_id

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
HOSTILE_USERS = ("", "root", 'a"b\\c', "é\u2028\u0000\x1f</script>", "123456", " spaced user ", "ü" * 300)
ADDRESSES = (("203.0.113.7", 54676), ("2001:db8::1", 22), ("fe80::1%eth0", None), (None, None))


def _reference(record: Record, namespace: str) -> bytes:
    action = {"create": {"_index": data_stream(record, namespace), "_id": record.id}}
    return orjson.dumps(action) + b"\n" + orjson.dumps(to_document(record, namespace)) + b"\n"


def _assert_same(event: Event, bastion: str = "bastion1", namespace: str = "default") -> None:
    fast, reference = event_lines(event, bastion, namespace), _reference(event_record(event, bastion), namespace)
    assert [orjson.loads(line) for line in fast.splitlines()] == [
        orjson.loads(line) for line in reference.splitlines()]
    assert fast == reference


def _events() -> list[Event]:
    """Every kind and outcome, each field present and absent in turn."""
    events = []
    for number, (kind, outcome) in enumerate(itertools.product(Kind, Outcome)):
        ip, port = ADDRESSES[number % len(ADDRESSES)]
        user = HOSTILE_USERS[number % len(HOSTILE_USERS)] if number % 5 else None
        full = number % 2 == 0
        events.append(Event(
            1741083302.123456 + number * 0.0004999, 3600 * (number % 3), "bastion-1" if number % 3 else None,
            ("sshd", "sudo", "su", "")[number % 4], 4242 + number if number % 6 else None, kind, outcome, ip, port,
            user, method="publickey" if full else None, key_type="ED25519" if number % 4 == 0 else None,
            fingerprint="SHA256:8nisd74JOfd9pbwnqd" if full else None, cert_id='id "x"' if number % 8 == 0 else None,
            cert_serial=number * 1_000_003 if number % 8 == 0 else None,
            client_host="evil.example\u0000" if ip is None and number % 2 else None,
            user_valid=(None, True, False)[number % 3], attributed_by=("line", "connection", None)[number % 3],
            detail='quote " back\\slash' if number % 7 == 0 else None, repeat=1 + (number % 4 == 1) * 4,
            source=("file:/var/log/auth.log", "journal", "file:/var/log/ü\"x", "")[number % 4],
            position=number * 977, raw=f'line {number} sshd[{4242 + number}]: "hostile" \\ \t é \ud7ff end',
        ))
    return events


@pytest.mark.parametrize("event", _events(), ids=lambda event: f"{event.kind.value}-{event.outcome.value}")
def test_every_kind_is_the_reference_document(event: Event) -> None:
    """Same bytes as the reference for each kind, outcome and mix of optional fields."""
    _assert_same(event)


@pytest.mark.parametrize("bastion", ["", 'b"1\\', "bastion-é"])
@pytest.mark.parametrize("namespace", ["default", "prod_eu"])
def test_other_bastions_and_namespaces(bastion: str, namespace: str) -> None:
    """The per-(namespace, bastion) templates are filled in for each, escaped like the rest."""
    for event in _events()[:20]:
        _assert_same(event, bastion, namespace)


def test_an_event_with_nothing_optional_is_the_reference() -> None:
    """Every optional field None, empty program, source and raw: the reference leaves the same parts out."""
    bare = Event(0.0, 0, None, "", None, Kind.CONNECTION, Outcome.INFO, None, None, None)
    _assert_same(bare)
    _assert_same(bare._replace(program="sshd", raw="sshd: hello", repeat=0, position=-1))


def test_ids_are_record_ids() -> None:
    """``event_id`` is the id :func:`record_id` gives the same parts (Elasticsearch's ``_id``: pinned)."""
    for event in _events():
        for bastion in ("bastion1", "", "é\u0000"):
            assert event_id(event, bastion) == record_id("event", bastion, event.source, event.position,
                                                         event.epoch, event.raw)
    surrogate = _events()[0]._replace(raw="bad byte \udcff")
    assert event_id(surrogate, "b") == record_id("event", "b", surrogate.source, surrogate.position,
                                                 surrogate.epoch, surrogate.raw)


@pytest.mark.parametrize("name", ["real_sshd_rfc3339.log", "real_sshd_traditional.log"])
def test_the_real_sshd_corpus_is_the_reference(name: str) -> None:
    """Every line real sshd wrote in the corpus (parsed as the daemon parses it) gives the reference bytes."""
    path = CORPUS / name
    parser = LineParser(path.stat().st_mtime)
    count = 0
    for position, line in enumerate(path.read_text(encoding="utf-8", errors="surrogateescape").splitlines()):
        event = parser.parse(line, f"file:{path}", position)
        if isinstance(event, Event):
            _assert_same(event)
            count += 1
    assert count > 10
