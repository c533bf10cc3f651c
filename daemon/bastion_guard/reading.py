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
    # SourceLine(...) runs a generated Python-level __new__; tuple.__new__ builds the same object
    # without that extra frame, which is measurable at a million lines.
    new = tuple.__new__
    for block, complete in _blocks(stream, chunk_bytes):
        if block.isascii():
            # Fast path: ASCII text decodes in one call, characters are bytes (so offsets stay byte
            # offsets), and b"\n" splits exactly where "\n" does. Same lines as decode() per piece.
            for text in block.decode("ascii").split("\n"):
                number += 1
                yield new(SourceLine, (number, offset, text[:-1] if text.endswith("\r") else text))
                offset += len(text) + 1
            continue
        for piece in block.split(b"\n") if complete else (block,):
            number += 1
            yield new(SourceLine, (number, offset, decode(piece)))
            offset += len(piece) + 1


def iter_batches(stream: BinaryIO, chunk_bytes: int = 1 << 20) -> Iterator[tuple[int, list[str]]]:
    """The texts :func:`iter_lines` yields, a chunk's worth at a time: ``(byte offset after, texts)``.

    For loops that need neither line numbers nor offsets per line (a replay counts lines itself): no
    generator step and no tuple per line.
    """
    offset = 0
    for block, complete in _blocks(stream, chunk_bytes):
        offset += len(block) + complete
        if block.isascii():  # as in iter_lines(); a chunk without a CR needs no per-line check
            texts = block.decode("ascii").split("\n")
            if b"\r" in block:
                texts = [text[:-1] if text.endswith("\r") else text for text in texts]
            yield offset, texts
        else:
            yield offset, [decode(piece) for piece in (block.split(b"\n") if complete else (block,))]


def iter_blocks(stream: BinaryIO, chunk_bytes: int = 1 << 20) -> Iterator[tuple[int, bytes, bool]]:
    """The raw runs :func:`iter_batches` decodes: ``(byte offset of the block, block, complete)``.

    A complete block holds whole lines separated by ``\n`` (the last one without it); an incomplete one
    is the final line of the stream, which had no newline. For the native parser, which takes bytes.
    """
    offset = 0
    for block, complete in _blocks(stream, chunk_bytes):
        yield offset, block, complete
        offset += len(block) + complete


def _blocks(stream: BinaryIO, chunk_bytes: int) -> Iterator[tuple[bytes, bool]]:
    """Runs of whole lines, each without its last newline, and ``True``; then an unterminated tail and
    ``False``. The one place that decides where lines end."""
    pending = b""
    while True:
        chunk = stream.read(chunk_bytes)
        if not chunk:
            break
        data = pending + chunk if pending else chunk
        cut = data.rfind(b"\n") + 1
        pending = data[cut:]
        if cut:
            yield data[: cut - 1], True
    if pending:
        yield pending, False


def decode(raw: bytes) -> str:
    """Bytes of one line to text: UTF-8, invalid bytes as ``\\xNN``, a trailing CR dropped."""
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("utf-8", "backslashreplace")
