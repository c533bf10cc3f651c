"""A block of log bytes through the native library: packed records in, events out.

One call parses many lines and returns fixed-size records (layout: ``native/src/records.rs``), so the
cost of crossing into the library is paid per block, not per line. A record is an event, a line the
Python parser must handle, a sweep marker, or (when every line is asked for) a noise / other-program
line; the library stops after a line for Python, so the caller parses it before the library reads on,
and the shared connection context sees every line in order.
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Iterator
from typing import NamedTuple

from bastion_guard.events import Event, Kind, Outcome
from bastion_guard.native.context import NativeContext, NativeError
from bastion_guard.native.library import RECORD_FIELDS, NativeLibrary

OTHER_PROGRAM = 100
NOISE = 101
PYTHON = 102
SWEEP = 103
THRESHOLD = 104  # with the native counting engine: a window reached its count (records::THRESHOLD)
COUNT_SLOTS = (SWEEP + 1) * 3  # records::COUNT_SLOTS: code * 3 + outcome
ARENA = 1 << 48
# The record as struct sees it: the epoch (field 4) is a double, everything else int64.
RECORD = struct.Struct("<4qd22q")
# The fields the replay reads, the others skipped as padding: start, end, code, outcome, epoch, pid, ip
# (2), port, user (2), line index. Unpacking 13 fields instead of 27 is measurably cheaper per record.
ENGINE_RECORD = struct.Struct("<4qd40x6q80xq")
# With the native counting engine the records are markers only: start, end, code, epoch, line index.
COUNTING_RECORD = struct.Struct("<3q8xd168xq")
_RECORDS_PER_CALL = 4096
_ARENA_PER_RECORD = 256  # as ARENA_PER_LINE in records.rs
_BAD_ADDRESS = -3  # engine_ffi::BAD_ADDRESS

OUTCOMES = (Outcome.FAILURE, Outcome.SUCCESS, Outcome.INFO)
_USER_VALID = (None, False, True)  # index: user_valid + 1
_ATTRIBUTED_BY = (None, "line", "connection")
_new_tuple = tuple.__new__

# A record, as RECORD unpacks it (documented field by field in native/src/records.rs).
Record = tuple[int, ...]


class Parsed(NamedTuple):
    """What one call returned."""

    next_start: int  # len(block) + 1 once every line is done
    lines: int  # lines handled by this call (with or without a record)
    records: Iterator[Record]
    arena: str  # text the records point into beyond the block (see ARENA)


class BlockText(NamedTuple):
    """What the text fields of one call's records point into."""

    text: str  # the block decoded as latin-1: character offsets are byte offsets
    arena: str  # the call's arena (see ARENA)
    kinds: tuple[Kind, ...]  # Kind per record code


class ChunkParser:
    """Parse blocks with one library context; reuse it for the whole stream.

    ``counted`` (per kind code) selects the events that get a record unless ``all_lines``; ``counts``
    accumulates every line handled natively by ``code * 3 + outcome`` (see ``records.rs``).
    """

    __slots__ = (
        "_all_lines", "_arena", "_context", "_counted", "_dll", "_handle", "_records", "_result", "_view",
        "counts", "kinds",
    )

    def __init__(
        self, library: NativeLibrary, context: NativeContext, counted: frozenset[Kind] = frozenset(),
        all_lines: bool = False,
    ) -> None:
        self._dll = library.dll
        # Held, not just its handle: the library's context is freed when the last reference goes.
        self._context = context
        self._handle = context.handle
        self.kinds = library.kinds
        self._counted = bytes(kind in counted for kind in library.kinds)
        self._all_lines = int(all_lines)
        self._records = (ctypes.c_int64 * (_RECORDS_PER_CALL * RECORD_FIELDS))()
        self._view = memoryview(self._records).cast("B")
        self._arena = ctypes.create_string_buffer(_RECORDS_PER_CALL * _ARENA_PER_RECORD)
        self.counts = (ctypes.c_int64 * COUNT_SLOTS)()
        self._result = (ctypes.c_int64 * 4)()

    def parse(
        self, block: bytes, start: int, next_sweep: float = float("inf"), interval: float = 0.0,
        layout: struct.Struct = RECORD,
    ) -> Parsed:
        """Records for the lines of ``block`` from byte ``start``, unpacked with ``layout``; the sweep clock
        is ``Engine.next_sweep`` and ``SWEEP_INTERVAL_SECS`` (the defaults: no sweep markers)."""
        status = self._dll.bgn_parse(
            self._handle, block, len(block), start, self._records, _RECORDS_PER_CALL, self._arena,
            len(self._arena), self._counted, len(self._counted), self._all_lines, next_sweep, interval,
            self.counts, COUNT_SLOTS, self._result,
        )
        if status != 0:
            raise NativeError("bgn_parse failed")
        next_start, count, used, lines = self._result
        arena = ctypes.string_at(self._arena, used).decode("ascii") if used else ""
        return Parsed(next_start, lines, layout.iter_unpack(self._view[: count * RECORD.size]), arena)

    def parse_counting(
        self, engine: int, block: bytes, start: int, *, source: int, base: int, python_sweeps: bool
    ) -> tuple[int, int, Iterator[Record]]:
        """:meth:`parse` with every event counted by the native engine ``engine`` (a handle): returns the
        next start, the lines done and the records (:data:`COUNTING_RECORD`): lines for Python, ``SWEEP``
        markers (if ``python_sweeps``) and a ``THRESHOLD`` last. ``source`` is the engine's index of the
        block's source, ``base`` the line number before ``start``."""
        status = self._dll.bgn_parse_counting(
            self._handle, engine, block, len(block), start, self._records, _RECORDS_PER_CALL, self._arena,
            len(self._arena), self.counts, COUNT_SLOTS, source, base, python_sweeps, self._result,
        )
        if status == _BAD_ADDRESS:
            raise ValueError("an address in the log does not appear to be an IPv4 or IPv6 network")
        if status != 0:
            raise NativeError("bgn_parse_counting failed")
        next_start, count, _used, lines = self._result
        return next_start, lines, COUNTING_RECORD.iter_unpack(self._view[: count * RECORD.size])


def build_event(record: Record, block: BlockText, source: str, position: int) -> Event:
    """The :class:`Event` of an event record.

    Host, program, user, key type and fingerprint always lie in the block (an empty one may point into
    the arena, and an out-of-range slice of ``text`` is empty too); address, method and detail may not.
    """
    (
        start, end, code, outcome, epoch, utc_offset, host_start, host_end, program_start, program_end, pid,
        ip_start, ip_end, port, user_start, user_end, method_start, method_end, key_start, key_end,
        fingerprint_start, fingerprint_end, user_valid, attributed_by, detail_start, detail_end, _index,
    ) = record
    text, arena, kinds = block
    return _new_tuple(
        Event,
        (
            epoch, utc_offset, text[host_start:host_end], text[program_start:program_end], None if pid < 0 else pid,
            kinds[code],
            OUTCOMES[outcome],
            None if ip_start < 0 else text[ip_start:ip_end] if ip_start < ARENA
            else arena[ip_start - ARENA : ip_end - ARENA],
            None if port < 0 else port,
            None if user_start < 0 else text[user_start:user_end],
            None if method_start < 0 else text[method_start:method_end] if method_start < ARENA
            else arena[method_start - ARENA : method_end - ARENA],
            None if key_start < 0 else text[key_start:key_end],
            None if fingerprint_start < 0 else text[fingerprint_start:fingerprint_end],
            None, None, None, _USER_VALID[user_valid + 1], _ATTRIBUTED_BY[attributed_by],
            None if detail_start < 0 else text[detail_start:detail_end] if detail_start < ARENA
            else arena[detail_start - ARENA : detail_end - ARENA],
            1, source, position, text[start:end],
        ),
    )


def build_engine_event(record: Record, block: BlockText, source: str, position: int) -> Event:
    """The :class:`Event` of an event record unpacked with :data:`ENGINE_RECORD`, with only the fields the
    rules engine reads (:data:`bastion_guard.rules.engine.ENGINE_FIELDS`; outcome and port are cheap and
    kept); the others are left empty. For the replay, whose events go to the engine and nowhere else.
    """
    _start, _end, code, outcome, epoch, pid, ip_start, ip_end, port, user_start, user_end, _index = record
    text, arena, kinds = block
    return _new_tuple(
        Event,
        (
            epoch, 0, None, "", None if pid < 0 else pid, kinds[code], OUTCOMES[outcome],
            None if ip_start < 0 else text[ip_start:ip_end] if ip_start < ARENA
            else arena[ip_start - ARENA : ip_end - ARENA],
            None if port < 0 else port,
            None if user_start < 0 else text[user_start:user_end],
            None, None, None, None, None, None, None, None, None, 1, source, position, "",
        ),
    )
