"""The GELF sink end to end against the GELF protocol test doubles (tests/doubles/gelf_double.py).

Graylog cannot run here; the doubles are local UDP, TCP (+TLS) and HTTP(S) receivers that reassemble
chunks and validate every message the way Graylog's inputs do, and record each violation. TLS uses
certificates made by the ``openssl`` command for this run (skipped, with the reason, without it).
"""

from __future__ import annotations

import base64
import logging
import os
import socket
from collections.abc import Iterator

import pytest

from bastion_guard.events import Event, Kind, Outcome
from bastion_guard.shipping.base import Delivery, Result
from bastion_guard.shipping.gelf_chunks import LAN_CHUNK_BYTES, MAX_CHUNKS, WAN_CHUNK_BYTES, Compression
from bastion_guard.shipping.gelf_config import TlsConfig
from bastion_guard.shipping.gelf_http import HttpTransport
from bastion_guard.shipping.gelf_sink import GelfSink
from bastion_guard.shipping.gelf_transport import MAX_TCP_FRAME_BYTES, TcpTransport, UdpTransport
from bastion_guard.shipping.records import Record, RecordKind, action_record, event_record
from doubles.gelf_double import HttpReceiver, Received, TcpReceiver, UdpReceiver, server_context
from doubles.tls_certs import Pki, make_pki, missing_openssl

HOSTILE_USERS = (
    "admin from 198.51.100.1 port 22",  # a fake address where a parser would look for one
    'x","_source_ip":"198.51.100.2',  # a JSON injection attempt
    "line\nbreak\rand\ttab",
    "nul\0byte",  # the TCP frame terminator
    "\x1b[31mred\x1b[0m",
    "пользователь-名前-🔑",
)


def _record(index: int, user: str = "admin", raw_extra: str = "") -> Record:
    event = Event(1795899600.0 + index / 1000, 0, "bastion1", "sshd", 1000 + index, Kind.AUTH_FAILURE,
                  Outcome.FAILURE, "203.0.113.7", 40000 + index, user, source="file:/var/log/auth.log",
                  position=index * 100, raw=f"sshd[{1000 + index}]: Failed password for {user}{raw_extra}")
    return event_record(event, "bastion1")


def _records(count: int) -> list[Record]:
    return [_record(index, HOSTILE_USERS[index % len(HOSTILE_USERS)]) for index in range(count)]


_OPEN: list[GelfSink] = []


def _sink(*args: object) -> GelfSink:
    """A sink closed after the test (its sockets must not outlive it)."""
    sink = GelfSink(*args)  # type: ignore[arg-type]
    _OPEN.append(sink)
    return sink


@pytest.fixture(autouse=True)
def _close_sinks() -> Iterator[None]:
    """Close every sink a test opened."""
    yield
    while _OPEN:
        _OPEN.pop().close()


def _by_id(messages: list[Received]) -> dict[str, Received]:
    return {message.payload["_event_id"]: message for message in messages}


def _assert_arrived_as_sent(records: list[Record], messages: list[Received]) -> None:
    """Every record arrived once, with its user name intact as one value and its real address."""
    received = _by_id(messages)
    assert len(messages) == len(records) == len(received)
    for record in records:
        payload = received[record.id].payload
        assert payload["_user_name"] == record.body["user"]
        assert payload["_source_ip"] == "203.0.113.7"
        assert payload["level"] == 4


def _all(result: Result, deliveries: object) -> bool:
    assert isinstance(deliveries, list)
    return all(isinstance(d, Delivery) and d.result is result for d in deliveries)


# --- UDP ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def udp() -> Iterator[UdpReceiver]:
    """A GELF UDP input double."""
    receiver = UdpReceiver()
    yield receiver
    receiver.close()


def _udp_sink(port: int, chunk: int = WAN_CHUNK_BYTES, compression: Compression = Compression.GZIP) -> GelfSink:
    return _sink("graylog-udp", UdpTransport("127.0.0.1", port, chunk, compression, 5.0))


def test_udp_delivers_hostile_and_unicode_names_as_data(udp: UdpReceiver) -> None:
    """A batch over UDP arrives whole and valid; hostile user names are values, not structure."""
    sink = _udp_sink(udp.port)
    records = _records(24)
    assert _all(Result.DELIVERED, sink.deliver(records))
    _assert_arrived_as_sent(records, udp.wait_for(len(records)))
    assert udp.violations == []
    assert {message.encoding for message in udp.messages} == {"gzip"}
    sink.close()


@pytest.mark.parametrize("compression", [Compression.ZLIB, Compression.NONE])
def test_udp_other_compressions_are_detected(udp: UdpReceiver, compression: Compression) -> None:
    """zlib and uncompressed payloads are recognised by the receiver from their first bytes."""
    sink = _udp_sink(udp.port, compression=compression)
    assert _all(Result.DELIVERED, sink.deliver(_records(3)))
    messages = udp.wait_for(3)
    assert {message.encoding for message in messages} == {"zlib" if compression is Compression.ZLIB else "plain"}
    assert udp.violations == []


def test_udp_big_message_is_chunked_and_reassembled(udp: UdpReceiver) -> None:
    """A 100 KB line (random, so gzip cannot shrink it much) needs ~100 WAN chunks; LAN chunks need fewer."""
    line = base64.b64encode(os.urandom(75_000)).decode()
    record = _record(1, raw_extra=line)
    assert _all(Result.DELIVERED, _udp_sink(udp.port).deliver([record]))
    assert _all(Result.DELIVERED, _udp_sink(udp.port, LAN_CHUNK_BYTES).deliver([record]))
    wan, lan = udp.wait_for(2)
    assert udp.violations == []
    assert wan.payload["full_message"] == record.body["raw"] == lan.payload["full_message"]
    assert 50 < wan.chunks <= MAX_CHUNKS
    assert 1 < lan.chunks < wan.chunks / 4


def test_udp_message_over_128_chunks_is_sent_truncated(udp: UdpReceiver) -> None:
    """A line that would need more than 128 chunks goes with its full_message cut and marked (the parsed
    fields intact), within 128 chunks; the receiver accepts it."""
    line = base64.b64encode(os.urandom(400_000)).decode()
    record = _record(2, raw_extra=line)
    [delivery] = _udp_sink(udp.port).deliver([record])
    assert delivery.result is Result.DELIVERED
    assert "truncated" in delivery.reason
    [message] = udp.wait_for(1)
    assert message.chunks <= MAX_CHUNKS
    assert message.payload["full_message"].endswith(" [truncated]")
    assert message.payload["_truncated_from_bytes"] == len(record.body["raw"])
    assert message.payload["_user_name"] == "admin"
    assert udp.violations == []


def test_udp_message_too_big_without_full_message_is_rejected(udp: UdpReceiver) -> None:
    """An action record whose own fields exceed 128 chunks cannot be cut: REJECTED with the reason, and the
    rest of the batch still goes."""
    huge = action_record(RecordKind.AUDIT, 1795899600.0, "bastion1", detail=base64.b64encode(os.urandom(300_000)).decode())
    small = _record(3)
    deliveries = _udp_sink(udp.port).deliver([huge, small])
    assert deliveries[0].result is Result.REJECTED
    assert "128 chunks" in deliveries[0].reason
    assert deliveries[1].result is Result.DELIVERED
    assert [message.payload["_event_id"] for message in udp.wait_for(1)] == [small.id]


def test_udp_health_resolves_and_opens_a_socket(udp: UdpReceiver) -> None:
    """UDP health cannot see the receiver; it says so."""
    health = _udp_sink(udp.port).health()
    assert health.ok
    assert "no acknowledgement" in health.detail


def test_udp_port_unreachable_becomes_retry() -> None:
    """Linux reports ICMP port-unreachable on the next send of a connected socket: that batch is RETRY."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = _udp_sink(port)
    first = sink.deliver([_record(1)])
    later = [sink.deliver([_record(2)]) for _ in range(3)]
    assert first[0].result is Result.DELIVERED  # UDP cannot know: fire and forget
    assert any(batch[0].result is Result.RETRY and "refused" in batch[0].reason.lower() for batch in later)


# --- TCP ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def tcp() -> Iterator[TcpReceiver]:
    """A GELF TCP input double."""
    receiver = TcpReceiver()
    yield receiver
    receiver.close()


def test_tcp_delivers_null_framed_plain_json(tcp: TcpReceiver) -> None:
    """A batch goes as null-terminated frames on one connection; a NUL in a user name does not split one."""
    sink = _sink("graylog-tcp", TcpTransport("127.0.0.1", tcp.port, 5.0, None))
    records = _records(60)
    assert _all(Result.DELIVERED, sink.deliver(records))
    _assert_arrived_as_sent(records, tcp.wait_for(len(records)))
    assert [m.payload["_event_id"] for m in tcp.messages] == [r.id for r in records]  # in order
    assert tcp.violations == []
    assert tcp.accepted == 1
    sink.close()


def test_tcp_reconnects_after_the_receiver_dropped_the_connection(tcp: TcpReceiver) -> None:
    """A restarted Graylog closes our connection; the next batch notices before writing and reconnects."""
    sink = _sink("graylog-tcp", TcpTransport("127.0.0.1", tcp.port, 5.0, None))
    assert _all(Result.DELIVERED, sink.deliver(_records(5)))
    tcp.wait_for(5)
    tcp.drop_connections()
    records = [_record(index) for index in range(100, 110)]
    deliveries = sink.deliver(records)
    if not _all(Result.DELIVERED, deliveries):  # the reset raced the write: RETRY, never a silent loss
        assert _all(Result.RETRY, deliveries)
        assert _all(Result.DELIVERED, sink.deliver(records))
    assert set(_by_id(tcp.wait_for(15))) >= {record.id for record in records}
    assert tcp.accepted == 2
    sink.close()


def test_tcp_down_is_retry_until_it_comes_back() -> None:
    """Nothing listening: every record is RETRY with the reason; on the same port again: delivered."""
    receiver = TcpReceiver()
    port = receiver.port
    receiver.close()
    sink = _sink("graylog-tcp", TcpTransport("127.0.0.1", port, 2.0, None))
    deliveries = sink.deliver(_records(3))
    assert _all(Result.RETRY, deliveries)
    assert "refused" in deliveries[0].reason.lower()
    assert not sink.health().ok
    receiver = TcpReceiver(port=port)
    try:
        records = _records(3)
        assert _all(Result.DELIVERED, sink.deliver(records))
        _assert_arrived_as_sent(records, receiver.wait_for(3))
    finally:
        receiver.close()
        sink.close()


def test_tcp_oversized_message_is_truncated_to_a_frame(tcp: TcpReceiver) -> None:
    """A message over Graylog's 2 MiB TCP frame limit is cut to fit instead of being dropped by the input."""
    record = _record(1, raw_extra="y" * (MAX_TCP_FRAME_BYTES + 1000))
    [delivery] = _sink("t", TcpTransport("127.0.0.1", tcp.port, 5.0, None)).deliver([record])
    assert delivery.result is Result.DELIVERED
    [message] = tcp.wait_for(1)
    assert message.payload["full_message"].endswith(" [truncated]")
    assert tcp.violations == []


# --- TLS ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Pki, Pki]:
    """Two unrelated CAs with a localhost server certificate each, made with the openssl command."""
    reason = missing_openssl()
    if reason is not None:
        pytest.skip(f"TLS tests: {reason}")
    directory = tmp_path_factory.mktemp("pki")
    return make_pki(directory, "graylog"), make_pki(directory, "impostor")


def test_tcp_tls_verifies_the_certificate(pki: tuple[Pki, Pki]) -> None:
    """With the right CA the batch arrives over TLS; trusting another CA, the handshake fails: RETRY, and
    health says why; a certificate for another name fails too."""
    good, impostor = pki
    receiver = TcpReceiver(tls=server_context(str(good.cert_file), str(good.key_file)))
    try:
        trusted = _sink("tls", TcpTransport("127.0.0.1", receiver.port, 5.0, TlsConfig(ca_file=good.ca_file)))
        health = trusted.health()
        assert health.ok and "certificate verified" in health.detail
        records = _records(10)
        assert _all(Result.DELIVERED, trusted.deliver(records))
        _assert_arrived_as_sent(records, receiver.wait_for(10))

        wrong_ca = _sink("tls", TcpTransport("127.0.0.1", receiver.port, 5.0, TlsConfig(ca_file=impostor.ca_file)))
        health = wrong_ca.health()
        assert not health.ok and "certificate" in health.detail
        deliveries = wrong_ca.deliver(_records(2))
        assert _all(Result.RETRY, deliveries)
        assert "certificate" in deliveries[0].reason

        wrong_name = TlsConfig(ca_file=good.ca_file, server_name="graylog.example.com")
        assert not _sink("tls", TcpTransport("127.0.0.1", receiver.port, 5.0, wrong_name)).health().ok
        assert len(receiver.messages) == 10
        trusted.close()
    finally:
        receiver.close()


def test_tls_without_ca_file_uses_system_cas_and_refuses_a_private_ca(pki: tuple[Pki, Pki]) -> None:
    """No ca_file means the system's CAs, which do not include our private CA: refused, never accepted."""
    good, _ = pki
    receiver = TcpReceiver(tls=server_context(str(good.cert_file), str(good.key_file)))
    try:
        sink = _sink("tls", TcpTransport("127.0.0.1", receiver.port, 5.0, TlsConfig()))
        assert _all(Result.RETRY, sink.deliver(_records(1)))
        assert receiver.messages == []
    finally:
        receiver.close()


# --- HTTP --------------------------------------------------------------------------------------------------------


@pytest.fixture
def http_double() -> Iterator[HttpReceiver]:
    """A GELF HTTP input double."""
    receiver = HttpReceiver()
    yield receiver
    receiver.close()


def _http_sink(port: int, **options: object) -> GelfSink:
    return _sink("graylog-http", HttpTransport("127.0.0.1", port, "/gelf", timeout_secs=5.0, **options))  # type: ignore[arg-type]


def test_http_posts_each_message_and_202_is_delivered(http_double: HttpReceiver) -> None:
    """One POST per message on a kept-alive connection; 202 means delivered."""
    sink = _http_sink(http_double.port, tls=None)
    records = _records(12)
    assert _all(Result.DELIVERED, sink.deliver(records))
    _assert_arrived_as_sent(records, http_double.messages)
    assert http_double.violations == []
    assert sink.health().ok
    sink.close()


def test_http_gzip_body(http_double: HttpReceiver) -> None:
    """``compression: gzip`` sends ``Content-Encoding: gzip`` bodies the input inflates."""
    sink = _http_sink(http_double.port, tls=None, compression=Compression.GZIP)
    records = _records(3)
    assert _all(Result.DELIVERED, sink.deliver(records))
    _assert_arrived_as_sent(records, http_double.messages)


def test_http_429_and_503_are_retry_with_retry_after(http_double: HttpReceiver) -> None:
    """429 with Retry-After: that record and the rest of the batch wait (RETRY, 7 s); 503 likewise."""
    sink = _http_sink(http_double.port, tls=None)
    http_double.script.answers.append((429, {"Retry-After": "7"}))
    records = _records(4)
    deliveries = sink.deliver(records)
    assert [d.result for d in deliveries] == [Result.RETRY] * 4
    assert {d.retry_after_secs for d in deliveries} == {7.0}
    assert http_double.requests == 1  # it stopped asking
    http_double.script.answers.append((503, {}))
    assert _all(Result.RETRY, sink.deliver(records))
    assert _all(Result.DELIVERED, sink.deliver(records))
    assert len(http_double.messages) == 4


def test_http_400_rejects_that_record_only(http_double: HttpReceiver) -> None:
    """A 400 for one message is that record's problem: REJECTED, and the batch goes on."""
    sink = _http_sink(http_double.port, tls=None)
    http_double.script.answers.append((400, {}))
    deliveries = sink.deliver(_records(3))
    assert [d.result for d in deliveries] == [Result.REJECTED, Result.DELIVERED, Result.DELIVERED]
    assert deliveries[0].reason.startswith("HTTP 400")


def test_http_wrong_path_is_a_configuration_retry(http_double: HttpReceiver) -> None:
    """404 means the sink points at the wrong place: records wait (RETRY) instead of being dead-lettered."""
    sink = _sink("g", HttpTransport("127.0.0.1", http_double.port, "/gelf/v2", timeout_secs=5.0, tls=None))
    deliveries = sink.deliver(_records(2))
    assert _all(Result.RETRY, deliveries)
    assert "HTTP 404" in deliveries[0].reason


def test_http_basic_auth_and_the_password_never_shows(caplog: pytest.LogCaptureFixture) -> None:
    """Right credentials: delivered with the Authorization header; wrong ones: RETRY (401) whose reason,
    like every log line, holds neither the password nor the header."""
    secret = "correct-horse-battery"  # noqa: S105 (a test credential for the double)
    receiver = HttpReceiver(credentials=("bastion", secret))
    caplog.set_level(logging.DEBUG)
    try:
        good = _http_sink(receiver.port, tls=None, credentials=("bastion", secret))
        assert _all(Result.DELIVERED, good.deliver(_records(2)))
        bad = _http_sink(receiver.port, tls=None, credentials=("bastion", "wrong-password"))
        deliveries = bad.deliver(_records(2))
        assert _all(Result.RETRY, deliveries)
        assert "HTTP 401" in deliveries[0].reason
        token = base64.b64encode(f"bastion:{secret}".encode()).decode()
        shown = " ".join(d.reason for d in deliveries) + caplog.text
        for leak in (secret, "wrong-password", token):
            assert leak not in shown
        assert receiver.authorizations[0] == f"Basic {token}"
    finally:
        receiver.close()


def test_https_verifies_the_certificate(pki: tuple[Pki, Pki]) -> None:
    """HTTPS with the right CA delivers; with another CA nothing is posted and the batch is RETRY."""
    good, impostor = pki
    receiver = HttpReceiver(tls=server_context(str(good.cert_file), str(good.key_file)))
    try:
        trusted = _http_sink(receiver.port, tls=TlsConfig(ca_file=good.ca_file))
        records = _records(3)
        assert _all(Result.DELIVERED, trusted.deliver(records))
        _assert_arrived_as_sent(records, receiver.messages)
        impostor_sink = _http_sink(receiver.port, tls=TlsConfig(ca_file=impostor.ca_file))
        deliveries = impostor_sink.deliver(_records(2))
        assert _all(Result.RETRY, deliveries)
        assert "certificate" in deliveries[0].reason
        assert not impostor_sink.health().ok
        assert receiver.requests == 3
    finally:
        receiver.close()


def test_kinds_filter_skips_other_records(udp: UdpReceiver) -> None:
    """A sink for decisions only answers SKIPPED for events and sends nothing for them."""
    sink = _sink("alerts", UdpTransport("127.0.0.1", udp.port, WAN_CHUNK_BYTES, Compression.GZIP, 5.0),
                    frozenset({RecordKind.UNBAN}))
    unban = action_record(RecordKind.UNBAN, 1795899600.0, "bastion1", target="203.0.113.7", origin="bastionctl")
    deliveries = sink.deliver([_record(1), unban])
    assert [d.result for d in deliveries] == [Result.SKIPPED, Result.DELIVERED]
    assert [m.payload["_record_kind"] for m in udp.wait_for(1)] == ["unban"]


def test_http_bulk_sends_many_messages_per_request() -> None:
    """With ``bulk`` a batch goes as few newline-separated requests, each within the body limit."""
    receiver = HttpReceiver(bulk=True, max_body_bytes=16 * 1024)
    try:
        sink = _http_sink(receiver.port, tls=None, bulk=True, max_body_bytes=16 * 1024)
        records = _records(100)
        assert _all(Result.DELIVERED, sink.deliver(records))
        _assert_arrived_as_sent(records, receiver.messages)
        assert 1 < receiver.requests < 20
        assert receiver.violations == []
    finally:
        receiver.close()


def test_http_bulk_request_refused_is_resent_singly_to_find_the_bad_record() -> None:
    """A 400 for a bulk request says nothing about which record: the messages are sent one by one, so only
    the offending one is REJECTED."""
    receiver = HttpReceiver(bulk=True)
    try:
        sink = _http_sink(receiver.port, tls=None, bulk=True)
        receiver.script.answers.extend([(400, {}), (202, {}), (400, {})])  # the bulk, then one by one
        records = _records(4)
        deliveries = sink.deliver(records)
        assert [d.result for d in deliveries] == [Result.DELIVERED, Result.REJECTED, Result.DELIVERED,
                                                  Result.DELIVERED]
        assert receiver.requests == 5
    finally:
        receiver.close()


def test_http_message_over_the_body_limit_is_truncated_not_refused(http_double: HttpReceiver) -> None:
    """The input refuses bodies over 64 KiB with 413; a longer message is cut to fit and arrives."""
    record = _record(1, raw_extra="z" * 100_000)
    [delivery] = _http_sink(http_double.port, tls=None).deliver([record])
    assert delivery.result is Result.DELIVERED
    [message] = http_double.messages
    assert message.payload["full_message"].endswith(" [truncated]")
    assert message.payload["_truncated_from_bytes"] == len(record.body["raw"])


def test_http_413_from_the_input_rejects_the_message(http_double: HttpReceiver) -> None:
    """A sink configured with a larger limit than the input's meets 413: REJECTED (it would never fit)."""
    record = _record(1, raw_extra="z" * 100_000)
    [delivery] = _http_sink(http_double.port, tls=None, max_body_bytes=1024 * 1024).deliver([record])
    assert delivery.result is Result.REJECTED
    assert delivery.reason.startswith("HTTP 413")


def test_http_connection_closed_by_the_input_is_reopened_without_retry(http_double: HttpReceiver) -> None:
    """Graylog closes idle kept-alive connections; a request that finds its connection gone is sent once
    more on a fresh one, so no record waits for a back-off because of it."""
    http_double.close_idle = True
    sink = _http_sink(http_double.port, tls=None)
    records = _records(4)
    assert _all(Result.DELIVERED, sink.deliver(records))
    _assert_arrived_as_sent(records, http_double.messages)


@pytest.mark.parametrize(
    ("count", "reasons"),
    [(3, ("did not acknowledge the batch",)), (200, ("timed out", "did not acknowledge the batch"))],
    ids=["written-not-acknowledged", "write-blocked"],
)
def test_tcp_receiver_that_stops_reading_is_retry_not_delivered(count: int, reasons: tuple[str, ...]) -> None:
    """A receiver that accepts but never reads (a 4 KiB window) cannot acknowledge a 30 KB batch that our
    kernel took whole, nor take a 4 MB one: either way the sink answers RETRY for the batch after its
    timeout instead of claiming delivery for bytes that only reached a socket buffer."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sink = _sink("stuck", TcpTransport("127.0.0.1", listener.getsockname()[1], 0.5, None))
        records = [_record(index, raw_extra="q" * (10_000 if count < 10 else 20_000)) for index in range(count)]
        deliveries = sink.deliver(records)
        assert _all(Result.RETRY, deliveries)
        assert any(reason in deliveries[0].reason for reason in reasons)
