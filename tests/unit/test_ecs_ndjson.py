"""The templated bulk lines of parsed-line records against the reference: ``ecs.to_document`` + orjson.

Byte for byte (key order included) and parsed back, over every event kind, each with and without its
optional fields, hostile user names, IPv6 and client host names, non-file sources, and the real sshd corpus.
Then the native path (a spooled batch row in, NDJSON out) against the same reference: every kind, hostile
strings in every field, epochs at second and millisecond edges, hypothesis over all fields, the rows it
leaves to Python, and fuzzed bytes (refused or read as the reference reads them, never a crash).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion_guard.events import Event, Kind, Outcome
from bastion_guard.native.ecs import RowIndex, load_ecs
from bastion_guard.parsing import LineParser
from bastion_guard.shipping.ecs import data_stream, to_document
from bastion_guard.shipping.ecs_ndjson import event_lines, native_frame, native_table
from bastion_guard.shipping.event_batches import decode_events, encode_events
from bastion_guard.shipping.records import Record, event_id, event_record, record_id
from bastion_guard.shipping.spooled_batch import SpooledBatch

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


# --- the native path (native/src/ecs.rs): a spooled batch row in, the same bytes out ------------------------

NATIVE, NATIVE_WHY = load_ecs()
native_only = pytest.mark.skipif(NATIVE is None, reason=f"no native ECS path here: {NATIVE_WHY}")
CONTROL = "".join(map(chr, range(32)))
HOSTILE_TEXTS = (
    "", " ", '"', "\\", 'a"b\\c', CONTROL, "\x7f", "\u2028\u2029", "bad \\xff\\xfe bytes kept as text",
    "\U0001f600 non-BMP \U00010348", "</script>", "sshd[7]: ", "ü" * 70_000,
)
# Around second and millisecond edges (microseconds rounded half to even first), before 1970, an int epoch.
EPOCHS = (0.0, 0.0005, 0.0004999, 0.0015, 0.9995, 0.9994999, 1.9999995, 1741083302.9995, 1741083302.0005,
          1741083302.999999, 1741083302.9999996, 1741083303.0, 951782399.9999999, -1.5, -0.0005, -86400.25,
          1e9, 253402300799.999, 1741083302)


def _native_batch(events: list[Event], bastion: str) -> SpooledBatch:
    batch = SpooledBatch.read(encode_events(bastion, events), NATIVE)
    assert batch.native, "the native path reads every row orjson writes from events like these"
    return batch


def _assert_native_same(events: list[Event], bastion: str = "bastion1", namespace: str = "default") -> None:
    """The whole row natively, and a few runs of it, are the reference's bytes."""
    batch = _native_batch(events, bastion)
    reference = [_reference(event_record(event, bastion), namespace) for event in events]
    assert batch.ecs_lines(0, len(events), namespace) == b"".join(reference)
    for first, stop in ((0, 1), (len(events) - 1, len(events)), (len(events) // 3, 2 * len(events) // 3 + 1)):
        assert batch.ecs_lines(first, stop, namespace) == b"".join(reference[first:stop]), (first, stop)


@native_only
@pytest.mark.parametrize("bastion", ["bastion1", "", 'b"1\\', "bastion-é\u2028"])
@pytest.mark.parametrize("namespace", ["default", "prod_eu"])
def test_native_every_kind_is_the_reference(bastion: str, namespace: str) -> None:
    """Every kind, outcome and mix of optional fields (the events above), as one row and in runs."""
    _assert_native_same(_events(), bastion, namespace)


@native_only
@pytest.mark.parametrize("text", HOSTILE_TEXTS, ids=lambda text: repr(text[:12]))
def test_native_hostile_strings_are_escaped_as_orjson_does(text: str) -> None:
    """Quotes, backslashes, every control character, U+2028, ``\\xNN`` text, non-BMP, 70k-character lines,
    in every string field (and in the raw line around the program marker the message is cut at)."""
    base = _events()[0]
    events = [
        base._replace(raw=text), base._replace(raw=f"sshd[{base.pid}]: {text}"), base._replace(user=text),
        base._replace(host=text, program=text, raw=f"{text}[{base.pid}]: {text}"), base._replace(source=text),
        base._replace(source=f"file:{text}"), base._replace(detail=text, attributed_by=text, cert_id=text),
        base._replace(ip=text, client_host=text), base._replace(ip=None, client_host=text),
        base._replace(method=text, key_type=text, fingerprint=text),
    ]
    _assert_native_same(events, bastion=text[:100])


@native_only
@pytest.mark.parametrize("epoch", EPOCHS, ids=repr)
def test_native_epochs_across_second_and_millisecond_edges(epoch: float) -> None:
    """``@timestamp`` and the id's ``repr(epoch)`` at the edges, in any utc_offset (times ship as UTC)."""
    base = _events()[1]
    _assert_native_same([base._replace(epoch=epoch, utc_offset=offset) for offset in (-43200, 0, 19800, 50400)])


@native_only
def test_native_ipv6_none_and_extreme_numbers() -> None:
    """IPv6 sources, every optional field None, zero and negative numbers, the largest i64 values."""
    bare = Event(0.0, 0, None, "", None, Kind.CONNECTION, Outcome.INFO, None, None, None)
    big = 2**63 - 1
    _assert_native_same([
        bare, bare._replace(program="sshd", raw="sshd: hello", repeat=0, position=-1),
        bare._replace(ip="2001:db8::1", port=0, user="", user_valid=False),
        bare._replace(ip="fe80::1%eth0", port=big, pid=-big - 1, position=big, cert_serial=big, repeat=-3),
    ])


@native_only
@pytest.mark.parametrize("name", ["real_sshd_rfc3339.log", "real_sshd_traditional.log"])
def test_native_real_sshd_corpus_is_the_reference(name: str) -> None:
    """The real sshd corpus, parsed as the daemon parses it, as one row (lines orjson can store)."""
    path = CORPUS / name
    parser = LineParser(path.stat().st_mtime)
    events = []
    for position, line in enumerate(path.read_text(encoding="utf-8", errors="surrogateescape").splitlines()):
        event = parser.parse(line, f"file:{path}", position)
        if isinstance(event, Event) and not _has_surrogates(event.raw):
            events.append(event)
    assert len(events) > 10
    _assert_native_same(events)


def _has_surrogates(text: str) -> bool:
    return any("\ud800" <= character <= "\udfff" for character in text)


_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
_INT = st.integers(-(2**63), 2**63 - 1)


@st.composite
def _any_event(draw: st.DrawFn) -> Event:
    """An event with any values of the types each field has (surrogates excluded: orjson cannot store them)."""
    maybe_text, maybe_int = st.none() | _TEXT, st.none() | _INT
    return Event(
        draw(st.floats(-30_000_000_000.0, 253_402_300_799.0) | st.integers(-30_000_000_000, 253_402_300_799)),
        draw(_INT), draw(maybe_text), draw(_TEXT), draw(maybe_int), draw(st.sampled_from(Kind)),
        draw(st.sampled_from(Outcome)), draw(maybe_text), draw(maybe_int), draw(maybe_text), draw(maybe_text),
        draw(maybe_text), draw(maybe_text), draw(maybe_text), draw(maybe_int), draw(maybe_text),
        draw(st.none() | st.booleans()), draw(maybe_text), draw(maybe_text), draw(_INT),
        draw(st.sampled_from(("file:", "journal", "")).flatmap(lambda prefix: _TEXT.map(prefix.__add__))),
        draw(_INT), draw(st.one_of(_TEXT, st.builds("{}[{}]: {}".format, _TEXT, _INT, _TEXT))),
    )


@native_only
@settings(max_examples=400, deadline=None)
@given(st.lists(_any_event(), min_size=1, max_size=6), _TEXT, st.sampled_from(["default", "x"]))
def test_native_any_event_fields_are_the_reference(events: list[Event], bastion: str, namespace: str) -> None:
    """Hypothesis over every field of ``Event``: the native row's bytes are the reference's."""
    _assert_native_same(events, bastion, namespace)


def _event_row(**changes: object) -> str:
    """A stored event's JSON with some fields' stored text replaced (by field name)."""
    values = list(orjson.loads(orjson.dumps(_events()[2], default=tuple)))
    text = [orjson.dumps(value).decode() for value in values]
    for name, stored in changes.items():
        text[Event._fields.index(name)] = str(stored)
    return "[" + ",".join(text) + "]"


ROWS_LEFT_TO_PYTHON = {
    "newer format": f'[2,"b",[{_event_row()}]]',
    "bastion not a string": f"[1,7,[{_event_row()}]]",
    "trailing data": f'[1,"b",[{_event_row()}]] x',
    "a fourth element": f'[1,"b",[{_event_row()}],4]',
    "unknown kind": f'[1,"b",[{_event_row(kind=chr(34) + "unknown" + chr(34))}]]',
    "pid as text": f'[1,"b",[{_event_row(pid=chr(34) + "42" + chr(34))}]]',
    "position beyond i64": f'[1,"b",[{_event_row(position=2**64 - 1)}]]',
    "int epoch beyond 2**53": f'[1,"b",[{_event_row(epoch=2**60)}]]',
    "epoch past year 9999": f'[1,"b",[{_event_row(epoch=1e300)}]]',
    "null epoch": f'[1,"b",[{_event_row(epoch="null")}]]',
    "port as float": f'[1,"b",[{_event_row(port=22.0)}]]',
    "user_valid as 1": f'[1,"b",[{_event_row(user_valid=1)}]]',
    "fewer fields (defaults)": '[1,"b",[[1.5,0,null,"sshd",7,"connection","info",null,null,null]]]',
    "lone surrogate": f'[1,"b",[{_event_row(raw=chr(34) + chr(92) + "ud800" + chr(34))}]]',
    "not JSON": '[1,"b",[[1.5,',
    "empty": "",
}


@native_only
@pytest.mark.parametrize("row", ROWS_LEFT_TO_PYTHON.values(), ids=ROWS_LEFT_TO_PYTHON.keys())
def test_rows_the_native_path_refuses_are_read_by_the_reference(row: str) -> None:
    """What the native path cannot show it reads as Python does goes to ``decode_events``: the batch is
    then exactly what the reference makes of it (its events, or its ValueError), with no native NDJSON."""
    body = row.encode()
    assert NATIVE is not None and NATIVE.index(body, native_table()) is None
    try:
        bastion, events = decode_events(body)
    except ValueError:
        with pytest.raises(ValueError, match="not an event batch"):
            SpooledBatch.read(body, NATIVE)
        return
    batch = SpooledBatch.read(body, NATIVE)
    assert not batch.native and batch.ecs_lines(0, batch.count, "default") is None
    assert (batch.bastion, batch.events()) == (bastion, events)


def test_without_the_native_path_batches_decode_as_before() -> None:
    """No library (or ``use_native=False``): the row is decoded at once by the reference."""
    events = _events()
    batch = SpooledBatch.read(encode_events("b", events), use_native=False)
    assert not batch.native and batch.events() == events and batch.ecs_lines(0, 1, "default") is None


def _check_index(data: bytes) -> None:
    """The native index of arbitrary bytes: None, or a row ``decode_events`` reads to the same events."""
    assert NATIVE is not None
    index = NATIVE.index(data, native_table())
    if index is not None:
        bastion, events = decode_events(data)
        assert (index.bastion, index.count) == (bastion, len(events))
        if events:
            assert NATIVE.lines(data, index, 0, index.count, table=native_table(),
                                frame=native_frame("default", bastion)) is not None
    # The run entry point on the same bytes taken as one run of any length: an answer or None, no crash.
    whole = RowIndex("b", [0, len(data)])
    for count in (1, 2):
        NATIVE.lines(data, RowIndex("b", [0] * count + [len(data)]) if count > 1 else whole, 0, count,
                     table=native_table(), frame=native_frame("default", "b"))


@native_only
@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=600))
def test_native_fuzz_arbitrary_bytes(data: bytes) -> None:
    """Arbitrary bytes never crash the library: they are refused, or read exactly as the reference reads them."""
    _check_index(data)


@native_only
@settings(max_examples=500, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 3), st.binary(min_size=1, max_size=4))
def test_native_fuzz_damaged_rows(at: int, cut: int, insert: bytes) -> None:
    """A valid row with bytes cut out and others put in (deep inside the JSON, where bugs would be)."""
    row = encode_events("bastion1", _events()[:3])
    at %= len(row)
    _check_index(row[:at] + insert + row[at + cut:])
