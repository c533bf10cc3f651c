"""Reading log text from files and streams without ever failing on what is inside them.

Lines are read as bytes and decoded as UTF-8 with invalid bytes kept visible as ``\\xNN`` escapes:
binary garbage, NUL bytes and truncated multi-byte sequences are carried through as text, and nothing
after them is lost. Line numbers are 1-based; offsets are the byte offset of the line's first byte.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO, NamedTuple


class SourceLine(NamedTuple):
    """One line of input with where it came from."""

    number: int
    offset: int
    text: str


def iter_lines(stream: BinaryIO, chunk_bytes: int = 1 << 20) -> Iterator[SourceLine]:
    """Yield every line of ``stream``; a final line without a newline is yielded too.

    Reads in chunks so memory stays bounded by the chunk size plus the longest line.
    """
    number = 0
    offset = 0
    pending = b""
    # SourceLine(...) runs a generated Python-level __new__; tuple.__new__ builds the same object
    # without that extra frame, which is measurable at a million lines.
    new = tuple.__new__
    while True:
        chunk = stream.read(chunk_bytes)
        if not chunk:
            break
        data = pending + chunk if pending else chunk
        cut = data.rfind(b"\n") + 1
        pending = data[cut:]
        if not cut:
            continue
        complete = data[:cut - 1]
        if complete.isascii():
            # Fast path: ASCII text decodes in one call, characters are bytes (so offsets stay byte
            # offsets), and b"\n" splits exactly where "\n" does. Same lines as decode() per piece.
            for text in complete.decode("ascii").split("\n"):
                number += 1
                yield new(SourceLine, (number, offset, text[:-1] if text.endswith("\r") else text))
                offset += len(text) + 1
            continue
        for piece in complete.split(b"\n"):
            number += 1
            yield new(SourceLine, (number, offset, decode(piece)))
            offset += len(piece) + 1
    if pending:
        yield SourceLine(number + 1, offset, decode(pending))


def decode(raw: bytes) -> str:
    """Bytes of one line to text: UTF-8, invalid bytes as ``\\xNN``, a trailing CR dropped."""
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("utf-8", "backslashreplace")
