"""The ECS path of the native library (``native/src/ecs.rs``, entry points in ``ecs_ffi.rs``): a spooled
batch row in, the bulk NDJSON of its parsed lines out, with no Python object built per line.

Python stays the reference (``bastion_guard.shipping.ecs_ndjson``) and supplies every static piece of
text (the ``table`` of kind shapes and outcomes, the ``frame`` of one namespace and bastion); the library
fills in the variable fields. It answers ``None`` for any row or run it cannot show it reads as Python
does, and the caller then takes the Python path. These entry points carry their own version
(``bgn_ecs_abi_version``), so a library built before them, or with other signatures, leaves the parser's
native path in use and this one off.
"""

from __future__ import annotations

import ctypes
import functools
import struct
from dataclasses import dataclass

from bastion_guard.native.library import load

# Must equal ECS_ABI_VERSION in native/src/ecs_ffi.rs.
ECS_ABI_VERSION = 1

_c_size = ctypes.c_size_t
_c_ptr = ctypes.c_void_p
_c_bytes = ctypes.c_char_p
_WORD = 8  # the index buffer's numbers are little-endian u64


@dataclass(frozen=True, slots=True)
class RowIndex:
    """A row the library read as ``decode_events`` does: its bastion, and where each event starts in it
    (``starts[i]``; ``starts[count]`` is the end of the last event)."""

    bastion: str
    starts: list[int]

    @property
    def count(self) -> int:
        """How many events the row holds."""
        return len(self.starts) - 1


class NativeEcs:
    """The ECS entry points of one loaded library."""

    def __init__(self, dll: ctypes.CDLL) -> None:
        """Declare the signatures; AttributeError if the library has no ECS path."""
        self._index = dll.bgn_ecs_index
        self._index.argtypes = [_c_bytes, _c_size, _c_bytes, _c_size, ctypes.POINTER(_c_size)]
        self._index.restype = _c_ptr
        self._lines = dll.bgn_ecs_lines
        self._lines.argtypes = [_c_ptr, _c_size, _c_size, _c_bytes, _c_size, _c_bytes, _c_size, _c_bytes, _c_size,
                                ctypes.POINTER(_c_size)]
        self._lines.restype = _c_ptr  # into the calling thread's buffer, valid until its next call
        self._data = dll.bgn_buffer_data
        self._data.argtypes = [_c_ptr]
        self._data.restype = _c_ptr
        self._free = dll.bgn_buffer_free
        self._free.argtypes = [_c_ptr]
        self._free.restype = None

    def _take(self, buffer: int | None, length: ctypes.c_size_t) -> bytes | None:
        """The bytes of a buffer the library handed over (freed here), or None for none."""
        if not buffer:
            return None
        try:
            return ctypes.string_at(self._data(buffer), length.value)
        finally:
            self._free(buffer)

    def index(self, row: bytes, table: bytes) -> RowIndex | None:
        """``row`` checked against ``table``'s kinds and outcomes and indexed, or None if the library does not
        read it exactly as ``decode_events`` would (Python decides about it then)."""
        length = _c_size()
        data = self._take(self._index(row, len(row), table, len(table), ctypes.byref(length)), length)
        if data is None:
            return None
        count = int.from_bytes(data[:_WORD], "little")
        end = _WORD * (count + 2)
        starts = list(struct.unpack_from(f"<{count + 1}Q", data, _WORD))  # little-endian, whatever this host is
        return RowIndex(data[end:].decode("utf-8"), starts)

    def lines(self, row: bytes, index: RowIndex, first: int, stop: int, *, table: bytes,
              frame: bytes) -> bytes | None:
        """The bulk NDJSON of events ``first`` to ``stop - 1`` of an indexed ``row``, or None (then the
        caller encodes them in Python)."""
        if not 0 <= first < stop <= index.count:
            raise ValueError(f"events {first}..{stop} of a row of {index.count}")
        start, end = index.starts[first], index.starts[stop]
        bastion = index.bastion.encode("utf-8")
        length = _c_size()
        # The run is passed in place: a pointer into ``row`` (kept alive by the caller), no copy of it.
        address = ctypes.cast(ctypes.c_char_p(row), ctypes.c_void_p).value or 0
        data = self._lines(address + start, end - start, stop - first, bastion, len(bastion), table, len(table),
                           frame, len(frame), ctypes.byref(length))
        return ctypes.string_at(data, length.value) if data else None  # copied before this thread calls again


@functools.cache
def load_ecs() -> tuple[NativeEcs | None, str]:
    """The ECS path of the native library (once per process) and why it is or is not in use."""
    return _load_ecs()


def _load_ecs() -> tuple[NativeEcs | None, str]:
    library, why = load()
    if library is None:
        return None, why
    try:
        version = library.dll.bgn_ecs_abi_version
        version.restype = ctypes.c_int64
        if version() != ECS_ABI_VERSION:
            return None, f"native ECS path: ABI {version()}, expected {ECS_ABI_VERSION}"
        return NativeEcs(library.dll), f"native ECS path ({library.path.name})"
    except AttributeError:
        return None, "native library without the ECS path"


__all__ = ["ECS_ABI_VERSION", "NativeEcs", "RowIndex", "load_ecs"]
