"""GELF over UDP: compression and chunking (pure; no I/O).

From the spec (Graylog2/documentation ``pages/gelf.rst``): a message larger than one datagram is sent as
chunks, each starting with a 12-byte header: the magic bytes ``0x1e 0x0f``, an 8-byte message id shared
by every chunk of the message, a 1-byte sequence number from 0 and a 1-byte sequence count. A message
MUST NOT need more than 128 chunks, and the receiver drops a message whose chunks do not all arrive
within 5 seconds. Payloads are GZIP (the protocol default), ZLIB or plain; the receiver tells them apart
by their first bytes. Message ids are 8 random bytes: the receiver keys reassembly on them (with the
sender's address), so a counter restarting with the daemon could splice two messages together.
"""

from __future__ import annotations

import enum
import gzip
import os
import zlib

CHUNK_MAGIC = b"\x1e\x0f"
CHUNK_HEADER_BYTES = 12  # magic 2 + message id 8 + sequence number 1 + sequence count 1
MAX_CHUNKS = 128
WAN_CHUNK_BYTES = 1420  # fits one Ethernet frame over IPv4 and IPv6 with room for tunnels: no IP fragments
LAN_CHUNK_BYTES = 8154  # under the spec's "usually limited to 8192 bytes"; the common LAN choice of GELF clients
MAX_DATAGRAM_BYTES = 65507  # the largest UDP payload over IPv4


class Compression(enum.StrEnum):
    """How a UDP (or HTTP) payload is compressed."""

    GZIP = "gzip"
    ZLIB = "zlib"
    NONE = "none"


def compress(data: bytes, compression: Compression) -> bytes:
    """``data`` compressed as the receiver will detect it (gzip ``1f 8b``, zlib ``78 ..``, or plain JSON)."""
    if compression is Compression.GZIP:
        return gzip.compress(data, compresslevel=6, mtime=0)  # mtime=0: equal input, equal bytes
    if compression is Compression.ZLIB:
        return zlib.compress(data, 6)
    return data


class TooManyChunksError(ValueError):
    """The message would need more than :data:`MAX_CHUNKS` chunks of this size."""


def max_message_bytes(chunk_bytes: int) -> int:
    """The largest (compressed) message that fits in :data:`MAX_CHUNKS` datagrams of ``chunk_bytes``."""
    return MAX_CHUNKS * (chunk_bytes - CHUNK_HEADER_BYTES)


def datagrams(data: bytes, chunk_bytes: int, message_id: bytes | None = None) -> list[bytes]:
    """The datagrams that carry ``data``: itself if it fits in ``chunk_bytes``, else chunks of at most
    ``chunk_bytes`` each (header included); raise :class:`TooManyChunksError` past 128 chunks."""
    if len(data) <= chunk_bytes:
        return [data]
    room = chunk_bytes - CHUNK_HEADER_BYTES
    count = -(-len(data) // room)
    if count > MAX_CHUNKS:
        raise TooManyChunksError(f"{len(data)} bytes need {count} chunks of {chunk_bytes} bytes; GELF allows "
                                 f"{MAX_CHUNKS}")
    ident = message_id if message_id is not None else os.urandom(8)
    if len(ident) != 8:
        raise ValueError("a GELF message id is 8 bytes")
    return [CHUNK_MAGIC + ident + bytes((seq, count)) + data[seq * room : (seq + 1) * room] for seq in range(count)]


__all__ = [
    "CHUNK_HEADER_BYTES", "CHUNK_MAGIC", "LAN_CHUNK_BYTES", "MAX_CHUNKS", "MAX_DATAGRAM_BYTES", "WAN_CHUNK_BYTES",
    "Compression", "TooManyChunksError", "compress", "datagrams", "max_message_bytes",
]
