"""The Elasticsearch sink with the official client against the Elasticsearch protocol test double.

The double (tests/doubles/es_double.py) is a local HTTP server that enforces the parts of the real protocol
the sink relies on: the product header, REST-compatibility media types, auth, data-stream create-only
writes, 409 on a duplicate _id, per-item statuses. Real Elasticsearch cannot run on this machine.
"""

from __future__ import annotations

import logging
import random
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bastion_guard.events import Event
from bastion_guard.native.ecs import load_ecs
from bastion_guard.parsing import LineParser
from bastion_guard.shipping import spooled_batch
from bastion_guard.shipping.base import Result
from bastion_guard.shipping.ecs import to_document
from bastion_guard.shipping.elasticsearch import ElasticsearchSink, build_elasticsearch
from bastion_guard.shipping.elasticsearch_config import ElasticsearchConfig
from bastion_guard.shipping.records import Record, RecordKind, action_record, event_record
from bastion_guard.shipping.secrets import SecretRef
from bastion_guard.shipping.spool import Spool
from bastion_guard.shipping.worker import Backoff, Worker
from doubles.es_double import ElasticsearchDouble, filter_paths, filter_response

AUDIT = "logs-bastion.audit-default"


def records(count: int, start: int = 0) -> list[Record]:
    """Distinct audit records (ids depend on the number)."""
    return [action_record(RecordKind.AUDIT, 1_700_000_000.0 + n, "bastion1", action="step", number=n)
            for n in range(start, start + count)]


@pytest.fixture
def double() -> Iterator[ElasticsearchDouble]:
    """A running double without auth."""
    server = ElasticsearchDouble().start()
    yield server
    server.stop()


@pytest.fixture(params=["native", "python"])
def ecs_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Spooled events encoded by the native ECS path (skipped without the library) or by Python's."""
    if request.param == "python":
        monkeypatch.setattr(spooled_batch, "load_ecs", lambda: (None, "turned off by the test"))
    elif load_ecs()[0] is None:
        pytest.skip(f"no native ECS path here: {load_ecs()[1]}")
    return str(request.param)


def sink_for(url: str, **options: object) -> ElasticsearchSink:
    """A sink on ``url`` with a short timeout."""
    return ElasticsearchSink(ElasticsearchConfig(hosts=(url,), timeout_secs=2.0, **options), "es")  # type: ignore[arg-type]


def test_bulk_create_statuses_map_to_deliveries(double: ElasticsearchDouble) -> None:
    """201 and 409 delivered, item 429 retried, 400 mapping error rejected; templates and ILM installed once."""
    sink = sink_for(double.url)
    batch = records(3)
    odd = action_record(RecordKind.AUDIT, 1_700_000_000.0, "bastion1", action="step", oops="x")
    assert [d.result for d in sink.deliver(batch[:2])] == [Result.DELIVERED] * 2
    double.throttle(items=1)
    double.reject_field("bastion.audit.oops")
    results = sink.deliver([batch[2], batch[0], batch[1], odd])  # 429, two duplicates (409), a mapping error
    assert [d.result for d in results] == [Result.RETRY, Result.DELIVERED, Result.DELIVERED, Result.REJECTED]
    assert results[3].reason.startswith("400 mapper_parsing_exception: failed to parse field [bastion.audit.oops]")
    assert double.statuses == {201: 2, 409: 2, 429: 1, 400: 1}
    assert double.ids(AUDIT) == {batch[0].id, batch[1].id}
    assert set(double.templates) == {"logs-bastion.auth", "logs-bastion.audit"}
    template = double.templates["logs-bastion.auth"]
    assert template["index_patterns"] == ["logs-bastion.auth-*"] and template["priority"] == 501
    assert template["data_stream"] == {} and template["template"]["settings"]["index.lifecycle.name"] == "bastion-logs"
    assert "delete" in double.policies["bastion-logs"]["phases"]
    assert double.requests["PUT /_index_template/logs-bastion.auth"] == 1, "installed on first use only"


def test_whole_request_throttle_carries_retry_after(double: ElasticsearchDouble) -> None:
    """A 429 for the whole bulk request: every record retries, with the server's Retry-After."""
    sink = sink_for(double.url, setup=False)
    double.throttle(requests=1, retry_after=12)
    results = sink.deliver(records(2))
    assert {(d.result, d.retry_after_secs) for d in results} == {(Result.RETRY, 12.0)}
    assert not double.templates, "setup: false installs nothing"


def test_without_manage_privileges_it_writes_anyway() -> None:
    """A writer-only key (create_doc, auto_configure) gets 403 on setup: the sink still delivers."""
    double = ElasticsearchDouble(manage=False).start()
    try:
        assert {d.result for d in sink_for(double.url).deliver(records(2))} == {Result.DELIVERED}
        assert not double.templates and len(double.ids(AUDIT)) == 2
    finally:
        double.stop()


def test_down_is_retry_and_unhealthy(double: ElasticsearchDouble) -> None:
    """Connection refused: retry, and the health check says so; back up: healthy, delivered."""
    sink = sink_for(double.url)
    double.go_down()
    assert {d.result for d in sink.deliver(records(2))} == {Result.RETRY}
    health = sink.health()
    assert not health.ok and "cannot reach" in health.detail
    double.come_up()
    assert sink.health().ok
    assert {d.result for d in sink.deliver(records(2))} == {Result.DELIVERED}


def test_api_key_and_basic_auth(tmp_path: Path) -> None:
    """The right API key or password is accepted; a wrong one is a 401 retry (never a dead letter), not shown."""
    key_file = tmp_path / "key"
    key_file.write_text("right-key\n")
    double = ElasticsearchDouble(api_key="right-key", basic=("shipper", "s3cret-pass")).start()
    try:
        assert sink_for(double.url, api_key=SecretRef(key_file)).health().ok
        password = tmp_path / "password"
        password.write_text("s3cret-pass")
        basic = sink_for(double.url, username="shipper", password=SecretRef(password))
        assert {d.result for d in basic.deliver(records(1))} == {Result.DELIVERED}
        key_file.write_text("wrong-key")
        wrong = sink_for(double.url, api_key=SecretRef(key_file))
        health = wrong.health()
        assert not health.ok and "401" in health.detail and "security_exception" in health.detail
        results = wrong.deliver(records(1, start=5))
        assert {d.result for d in results} == {Result.RETRY}
        assert "wrong-key" not in repr(wrong) + health.detail + results[0].reason
    finally:
        double.stop()


@pytest.mark.parametrize(("major", "works"), [(8, True), (9, True), (10, False)])
def test_client_works_with_8_and_9_servers(major: int, works: bool) -> None:
    """The 8.x client's compatible-with=8 is accepted by 8.x and 9.x servers; a server two majors on refuses it."""
    double = ElasticsearchDouble(major=major).start()
    try:
        health = sink_for(double.url).health()
        assert health.ok is works, health.detail
        if not works:
            assert "media_type_header_exception" in health.detail
    finally:
        double.stop()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is needed to make a test CA")
def test_tls_verified_against_the_ca_file(tmp_path: Path) -> None:
    """HTTPS with a self-signed CA: verified with ca_file; refused (retry) against the system CAs."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    double = ElasticsearchDouble(tls=context).start()
    try:
        assert double.url.startswith("https://")
        trusted = sink_for(double.url, ca_file=cert)
        assert {d.result for d in trusted.deliver(records(1))} == {Result.DELIVERED}
        untrusted = sink_for(double.url)
        assert {d.result for d in untrusted.deliver(records(1, start=1))} == {Result.RETRY}
        assert not untrusted.health().ok
    finally:
        double.stop()


class OutageTime:
    """Simulated time for a long outage: events keep arriving, the cluster comes back after ``outage_secs``."""

    def __init__(self, double: ElasticsearchDouble, spool: Spool, outage_secs: float) -> None:
        self.now = 0.0
        self.double = double
        self.spool = spool
        self.outage_secs = outage_secs
        self.appended = 0
        self.sleeps = 0

    def clock(self) -> float:
        """Now."""
        return self.now

    def sleep(self, seconds: float) -> None:
        """Time passes; ten new events arrive per back-off sleep; the cluster returns after the outage."""
        self.now += seconds
        self.sleeps += 1
        self.spool.append(records(10, start=self.appended))
        self.appended += 10
        if self.now >= self.outage_secs and not self.double.up:
            self.double.come_up()


def test_six_hour_outage_in_simulated_time_delivers_every_record_exactly_once(tmp_path: Path) -> None:
    """Elasticsearch down for six simulated hours while records keep arriving: when it returns, each record is
    stored once, nothing is lost, and the worker's waits never exceeded the back-off cap."""
    double = ElasticsearchDouble().start()
    spool = Spool.open(tmp_path / "spool.db", ["es"])
    time = OutageTime(double, spool, outage_secs=6 * 3600)
    worker = Worker(sink_for(double.url), spool, batch_size=200, backoff=Backoff(1.0, 120.0),
                    clock=time.clock, sleep=time.sleep, rng=random.Random(3))  # noqa: S311 (jitter, seeded)
    try:
        spool.append(records(50))
        time.appended = 50
        double.go_down()
        assert worker.run_once(), "the first batch is retried through the whole outage"
        assert double.up and time.now >= time.outage_secs
        while worker.run_once():
            pass
        stored = double.ids(AUDIT)
        assert time.appended > 1000, "events kept arriving during the outage"
        assert stored == {record.id for record in records(time.appended)}
        assert double.statuses[201] == time.appended, "each record created exactly once"
        assert spool.size() == (0, 0)
    finally:
        worker.join()
        double.stop()


def test_credentials_over_plain_http_to_another_host_are_warned_about(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """Basic auth over http:// to a non-loopback host works (private networks) but is never silent; loopback is."""
    monkeypatch.setenv("BG_TEST_ES_PASSWORD", "s3cret-value")
    password = SecretRef(env="BG_TEST_ES_PASSWORD")
    with caplog.at_level(logging.WARNING, logger="bastiond.shipping"):
        build_elasticsearch(ElasticsearchConfig(hosts=("http://127.0.0.1:9200",), username="elastic",
                                                password=password), "local").close()
        assert not caplog.records
        build_elasticsearch(ElasticsearchConfig(hosts=("http://es.internal:9200",), username="elastic",
                                                password=password), "remote").close()
    assert "over plain http" in caplog.text and "es.internal" in caplog.text
    assert "s3cret-value" not in caplog.text


def test_spooled_events_arrive_as_the_reference_documents_and_rejects_are_dead_lettered_as_records(
        tmp_path: Path, double: ElasticsearchDouble, ecs_path: str) -> None:
    """Through the worker's event path (``deliver_queued``: no records built), natively and in Python: the
    double stores exactly ``to_document`` of each event's record, decisions beside them; a line the cluster
    rejects becomes a dead letter holding the record ``event_record`` builds, and a replayed dead letter goes
    by the record path."""
    parser = LineParser(0.0)
    lines = [
        "2025-03-04T10:15:02.123456+00:00 bastion1 sshd[4242]: Failed password for invalid user admin "
        "from 203.0.113.7 port 54676 ssh2",
        "2025-03-04T10:15:03.000001+00:00 bastion1 sshd[4243]: Invalid user \"bob\\x\" from 2001:db8::7 port 2",
        "2025-03-04T10:16:40.001122+00:00 bastion1 sshd[4311]: Accepted publickey for alice from "
        "198.51.100.23 port 50522 ssh2: ED25519 SHA256:8nisd74JOfd9pbwnqd/f/D6D6qSl9lEc0CFglfW/FZE",
    ]
    events = [event for n, line in enumerate(lines)
              if isinstance(event := parser.parse(line, "file:/var/log/auth.log", n * 100), Event)]
    assert len(events) == len(lines)
    spool = Spool.open(tmp_path / "spool.db", ["es"])
    spool.append_batch(events, "bastion1", records(2))
    assert [item.batch is not None and item.batch.native for item in spool.read("es", 10)] == [
        ecs_path == "native"] * 3 + [False] * 2
    double.reject_field("bastion.ssh.fingerprint")  # only the accepted login carries one
    worker = Worker(sink_for(double.url), spool, backoff=Backoff(0.01, 0.1))
    assert worker.run_once()
    expected = {record.id: to_document(record, "default") for record in map(event_record, events, ["bastion1"] * 3)}
    accepted = {rid: doc for rid, doc in expected.items() if rid != event_record(events[2], "bastion1").id}
    assert double.documents["logs-bastion.auth-default"] == accepted
    assert double.ids(AUDIT) == {record.id for record in records(2)}
    letters = spool.dead_letters("es")
    assert [letter.record for letter in letters] == [event_record(events[2], "bastion1")]
    assert letters[0].reason.startswith("400 mapper_parsing_exception")
    double.accept_all_fields()
    assert spool.replay() == 1 and worker.run_once()
    assert double.documents["logs-bastion.auth-default"] == expected


def _attack_events(count: int) -> list[Event]:
    """Failed logins, and one accepted login (the sixth line: the only one with a key fingerprint)."""
    parser = LineParser(0.0)
    lines = [f"2025-03-04T10:15:{n % 60:02d}.{n:06d}+00:00 bastion1 sshd[{4000 + n}]: Failed password for "
             f"invalid user u{n} from 203.0.113.{n % 250 + 1} port {40000 + n} ssh2" for n in range(count)]
    lines[5] = ("2025-03-04T10:16:40.001122+00:00 bastion1 sshd[4311]: Accepted publickey for alice from "
                "198.51.100.23 port 50522 ssh2: ED25519 SHA256:8nisd74JOfd9pbwnqd/f/D6D6qSl9lEc0CFglfW/FZE")
    events = [parser.parse(line, "file:/var/log/auth.log", n * 120) for n, line in enumerate(lines)]
    return [event for event in events if isinstance(event, Event)]


def test_per_item_retries_and_dead_letters_of_spooled_events(
        tmp_path: Path, double: ElasticsearchDouble, ecs_path: str) -> None:
    """Items answered 429 are sent again alone (the retry is a shorter run of a batch row), the item answered
    400 becomes a dead letter holding its own record, and every other line arrives once, on both paths."""
    events = _attack_events(12)
    assert len(events) == 12
    spool = Spool.open(tmp_path / "spool.db", ["es"])
    spool.append_batch(events[:7], "bastion1", records(1))
    spool.append_batch(events[7:], "bastion1")
    rejected = event_record(events[5], "bastion1")
    double.reject_field("bastion.ssh.fingerprint")
    double.throttle(items=3)  # the first three items of the next request (events 0-2) answer 429
    worker = Worker(sink_for(double.url), spool, backoff=Backoff(0.001, 0.01))
    while worker.run_once():
        pass
    expected = {record.id: to_document(record, "default")
                for record in (event_record(event, "bastion1") for event in events) if record.id != rejected.id}
    assert double.documents["logs-bastion.auth-default"] == expected
    assert double.ids(AUDIT) == {record.id for record in records(1)}
    assert (double.statuses[429], double.statuses[400], double.statuses[201]) == (3, 1, 11 + 1)
    assert [letter.record for letter in spool.dead_letters("es")] == [rejected]
    assert spool.size() == (0, 0)


def test_filter_path_is_elasticsearchs_response_filtering(double: ElasticsearchDouble) -> None:
    """The double filters answers as Elasticsearch does, so the sink's filtered bulk answers (every item's
    status and error, nothing else) are tested against the real rules: an element left empty is dropped
    (``items.*.error`` alone would lose the clean items and the answer would no longer line up)."""
    answer = {"took": 3, "errors": True, "items": [
        {"create": {"_index": "i", "_id": "a", "_version": 1, "status": 201, "_shards": {"total": 2}}},
        {"create": {"_index": "i", "_id": "b", "status": 400, "error": {"type": "t", "reason": "r", "x": 1}}}]}
    sink_filter = filter_paths("filter_path=errors,items.*.status,items.*.error.type,items.*.error.reason")
    assert sink_filter is not None and filter_response(answer, sink_filter) == {"errors": True, "items": [
        {"create": {"status": 201}}, {"create": {"status": 400, "error": {"type": "t", "reason": "r"}}}]}
    errors_only = filter_paths("filter_path=items.*.error")
    assert errors_only is not None and filter_response(answer, errors_only) == {
        "items": [{"create": {"error": {"type": "t", "reason": "r", "x": 1}}}]}
    anywhere = filter_paths("filter_path=**.reason,took")
    assert anywhere is not None and filter_response(answer, anywhere) == {
        "took": 3, "items": [{"create": {"error": {"reason": "r"}}}]}
    with pytest.raises(ValueError, match="exclusions"):
        filter_paths("filter_path=-took")
    sink = sink_for(double.url, setup=False)
    assert [d.result for d in sink.deliver(records(2))] == [Result.DELIVERED] * 2
    assert double.requests["PUT /_bulk"] + double.requests["POST /_bulk"] == 1
