"""GELF UDP chunking and compression, checked against the protocol test double's reassembly."""

from __future__ import annotations

import os

import pytest

from bastion_guard.shipping.gelf_chunks import (
    CHUNK_HEADER_BYTES,
    CHUNK_MAGIC,
    MAX_CHUNKS,
    WAN_CHUNK_BYTES,
    Compression,
    TooManyChunksError,
    compress,
    datagrams,
    max_message_bytes,
)
from doubles.gelf_double import ChunkAssembler, ProtocolViolationError, decode_payload


class FakeClock:
    """Seconds that move only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_small_message_is_one_plain_datagram() -> None:
    """A message that fits one datagram goes without a chunk header."""
    assert datagrams(b"x" * WAN_CHUNK_BYTES, WAN_CHUNK_BYTES) == [b"x" * WAN_CHUNK_BYTES]


def test_chunks_carry_the_spec_header_and_reassemble() -> None:
    """Magic, one 8-byte id for all chunks, sequence 0..n-1, the count; no datagram over the chunk size."""
    data = os.urandom(10_000)
    chunks = datagrams(data, 1000)
    room = 1000 - CHUNK_HEADER_BYTES
    assert len(chunks) == -(-len(data) // room)
    assert {chunk[:2] for chunk in chunks} == {CHUNK_MAGIC}
    assert len({chunk[2:10] for chunk in chunks}) == 1
    assert [chunk[10] for chunk in chunks] == list(range(len(chunks)))
    assert {chunk[11] for chunk in chunks} == {len(chunks)}
    assert max(len(chunk) for chunk in chunks) <= 1000
    assembler = ChunkAssembler()
    results = [assembler.feed("sender", chunk) for chunk in reversed(chunks)]  # order does not matter
    assert results[:-1] == [None] * (len(chunks) - 1)
    assert results[-1] == (data, len(chunks))


def test_message_ids_differ_between_messages() -> None:
    """Random ids: two messages from one sender never share reassembly state."""
    first, second = datagrams(b"a" * 3000, 1000), datagrams(b"a" * 3000, 1000)
    assert first[0][2:10] != second[0][2:10]


def test_128_chunks_is_the_limit() -> None:
    """Exactly 128 chunks are allowed; one byte more is refused before anything is sent."""
    chunk = 512
    limit = max_message_bytes(chunk)
    assert len(datagrams(os.urandom(limit), chunk)) == MAX_CHUNKS
    with pytest.raises(TooManyChunksError, match="129 chunks"):
        datagrams(os.urandom(limit + 1), chunk)


@pytest.mark.parametrize("compression", list(Compression))
def test_receiver_detects_each_compression(compression: Compression) -> None:
    """gzip (the default), zlib and plain are told apart by their first bytes, as Graylog does."""
    data = compress(b'{"version":"1.1","host":"h","short_message":"m","level":6}', compression)
    payload, encoding = decode_payload(data)
    assert payload["short_message"] == "m"
    assert encoding == {"gzip": "gzip", "zlib": "zlib", "none": "plain"}[compression.value]


def test_double_drops_incomplete_messages_after_five_seconds() -> None:
    """A message whose chunks do not all arrive within 5 s is dropped; late chunks start a new, incomplete one."""
    clock = FakeClock()
    assembler = ChunkAssembler(clock)
    chunks = datagrams(os.urandom(3000), 1000)
    assert assembler.feed("s", chunks[0]) is None
    clock.now += 5.5
    assert all(assembler.feed("s", chunk) is None for chunk in chunks[1:])
    assert assembler.expired == 1


@pytest.mark.parametrize(
    ("datagram", "problem"),
    [
        (CHUNK_MAGIC + b"12345678" + bytes((0, 129)) + b"x", "count 129"),
        (CHUNK_MAGIC + b"12345678" + bytes((3, 3)) + b"x", "sequence number 3"),
        (CHUNK_MAGIC + b"12345678" + bytes((0, 0)) + b"x", "count 0"),
        (CHUNK_MAGIC + b"1234", "shorter than"),
    ],
    ids=["over-128", "seq-not-below-count", "zero-count", "short-header"],
)
def test_double_refuses_malformed_chunks(datagram: bytes, problem: str) -> None:
    """The double enforces the chunk header rules, so a sender bug cannot pass unnoticed."""
    with pytest.raises(ProtocolViolationError, match=problem):
        ChunkAssembler().feed("s", datagram)
