"""The rules engine with its counting in the native library: no Python runs for an event that only counts.

:class:`NativeEngine` is a :class:`~bastion_guard.rules.Engine` whose event rules count in the library
(``native/src/engine.rs``: the same windows, silences, sweeps and cap). Deciding stays here and is the
same code: when a window reaches its count the library stops with a threshold, and
:meth:`Engine._conclude` (allowlists, growing bans, the decision with its evidence, recidive) runs on it;
what it decides goes back to the library through the silence hooks (``_extend_ban``, ``_lift_ban``,
``_set_quiet``). Rules that count bans (recidive) count here, as before; the library says when it swept,
so that they are swept at the same event times.
"""

from __future__ import annotations

import ctypes
import heapq
import ipaddress
import os
import struct
import weakref
from collections.abc import Iterable

from bastion_guard.decisions import Decision, Evidence
from bastion_guard.events import Event, Kind
from bastion_guard.native.context import NativeError
from bastion_guard.native.library import NativeLibrary
from bastion_guard.native.rulebook import counts_natively, describe, kind_codes, unported
from bastion_guard.rules.counts import EngineCounts
from bastion_guard.rules.engine import SWEEP_INTERVAL_SECS, Engine, RuleStats, _Rule
from bastion_guard.rules.spec import RuleSet

THRESHOLD = 1  # bgn_engine_feed's flags: a threshold waits ...
SWEPT = 2  # ... and the engine swept
BAD_ADDRESS = -3  # engine_ffi::BAD_ADDRESS
_DEFAULT_MAX_KEYS = 2_000_000  # as Engine's
_INFO_FIELDS = 7
_INT64_MAX = (1 << 63) - 1
_ACTIVE_ENTRY = struct.Struct("<I")
_EXPIRY = struct.Struct("<d")
_BITS = struct.Struct("<q")

_c_i64 = ctypes.c_int64
_c_size = ctypes.c_size_t
_c_ptr = ctypes.c_void_p
_c_bytes = ctypes.c_char_p
_c_i32 = ctypes.c_int32
_c_f64 = ctypes.c_double

_SIGNATURES: dict[str, tuple[list[type], type | None]] = {
    "bgn_engine_new": ([_c_bytes, _c_size, _c_i64, _c_f64, _c_i64], _c_ptr),
    "bgn_engine_free": ([_c_ptr], None),
    "bgn_engine_feed": (
        [_c_ptr, _c_i64, _c_f64, _c_bytes, _c_size, _c_i32, _c_bytes, _c_size, _c_i32, _c_i32, _c_f64, _c_i64, _c_i64,
         _c_i64],
        _c_i64,
    ),
    "bgn_engine_resume": ([_c_ptr], _c_i64),
    "bgn_engine_threshold": ([_c_ptr, _c_ptr, _c_ptr, _c_size, _c_ptr, _c_size, _c_ptr, _c_size], _c_i64),
    "bgn_engine_ban": ([_c_ptr, _c_bytes, _c_size, _c_f64], _c_i64),
    "bgn_engine_lift": ([_c_ptr, _c_bytes, _c_size], _c_i64),
    "bgn_engine_quiet": ([_c_ptr, _c_i64, _c_bytes, _c_size, _c_f64], _c_i64),
    "bgn_engine_sweep": ([_c_ptr, _c_f64], _c_i64),
    "bgn_engine_next_sweep": ([_c_ptr], _c_f64),
    "bgn_engine_stats": ([_c_ptr, _c_ptr, _c_size], _c_i64),
    "bgn_engine_tracked_keys": ([_c_ptr], _c_i64),
    "bgn_engine_active": ([_c_ptr, _c_ptr, _c_size], _c_i64),
    "bgn_parse_counting": (
        [_c_ptr, _c_ptr, _c_bytes, _c_size, _c_size, _c_ptr, _c_size, _c_ptr, _c_size, _c_ptr, _c_size, _c_i64,
         _c_i64, _c_i32, _c_ptr],
        _c_i64,
    ),
}


def _declare(library: NativeLibrary) -> bool:
    """Declare the engine's entry points; false if the library has none (built before the engine)."""
    dll = library.dll
    if not all(hasattr(dll, name) for name in _SIGNATURES):
        return False
    for name, (arguments, result) in _SIGNATURES.items():
        function = getattr(dll, name)
        function.argtypes = arguments
        function.restype = result
    return True


def unavailable(library: NativeLibrary, ruleset: RuleSet) -> str | None:
    """Why the rules of ``ruleset`` cannot count in ``library`` (then Python counts them), or ``None``."""
    if os.environ.get("BASTION_GUARD_NATIVE_ENGINE", "1") == "0":
        return "disabled by BASTION_GUARD_NATIVE_ENGINE=0"
    if not _declare(library):
        return "the library has no counting engine"
    return unported(ruleset, kind_codes(library.kinds))


def _text(value: str) -> bytes:
    # surrogatepass: one-to-one on every str, so equal bytes in the library mean equal text here.
    return value.encode("utf-8", "surrogatepass")


def _check(status: int) -> int:
    if status == BAD_ADDRESS:
        raise ValueError("an address of the event does not appear to be an IPv4 or IPv6 network")
    if status < 0:
        raise NativeError("the native rules engine refused a call")
    return status


class NativeEngine(Engine):
    """:class:`Engine` counting its event rules in ``library`` (see the module docstring).

    Check :func:`unavailable` first: the rule set must be one the library can count.
    """

    def __init__(
        self,
        ruleset: RuleSet,
        library: NativeLibrary,
        extra_allowed: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network] = (),
        history: dict[tuple[str, str], tuple[int, float]] | None = None,
        max_keys: int = _DEFAULT_MAX_KEYS,
    ) -> None:
        super().__init__(ruleset, extra_allowed, history, max_keys)
        reason = unavailable(library, ruleset)
        if reason is not None:
            raise NativeError(f"the native rules engine cannot count this rule set: {reason}")
        self._dll = library.dll
        self._codes = kind_codes(library.kinds)
        self._code_of = {kind: code for code, kind in enumerate(self._codes)}
        self._native_rules = [rule for rule in self._rules if counts_natively(rule.spec)]
        self._native_index = {id(rule): index for index, rule in enumerate(self._native_rules)}
        self._python_rules = [rule for rule in self._rules if not counts_natively(rule.spec)]
        # Per rule counted here: (newest entry's epoch, key) for every change of a window's newest entry,
        # so that a sweep finds the stale windows without reading every window (see _forget_stale_windows).
        self._newest: dict[int, list[tuple[float, str]]] = {id(rule): [] for rule in self._python_rules}
        description = describe((rule.spec for rule in self._native_rules), ruleset, self._codes)
        handle = self._dll.bgn_engine_new(
            description, len(description), self._code_of[Kind.AUTH_SUCCESS], SWEEP_INTERVAL_SECS, max_keys
        )
        if not handle:
            raise NativeError("bgn_engine_new refused the rule description")
        self._handle: int = handle
        weakref.finalize(self, self._dll.bgn_engine_free, handle)
        self._info = (ctypes.c_int64 * _INFO_FIELDS)()
        self._key = ctypes.create_string_buffer(256)
        self._user = ctypes.create_string_buffer(256)
        self._evidence = (ctypes.c_double * (3 * 64))()

    @property
    def handle(self) -> int:
        """The library's pointer, for :meth:`ChunkParser.parse_counting`."""
        return self._handle

    @property
    def sweeps_python_rules(self) -> bool:
        """Whether rules counted here need the library's sweep markers."""
        return bool(self._python_rules)

    def source_index(self, source: str) -> int:
        """The index evidence references carry for ``source`` (shared by both sides)."""
        return self._source_index(source)

    # --- Engine's interface -------------------------------------------------------------------------------

    def feed(self, event: Event) -> tuple[Decision, ...]:
        """:meth:`Engine.feed`, counted in the library."""
        ip, user, pid = event.ip, event.user, event.pid
        ip_text = b"" if ip is None else _text(ip)
        user_text = b"" if user is None else _text(user)
        status = _check(
            self._dll.bgn_engine_feed(
                self._handle, self._code_of[event.kind], event.epoch, ip_text, len(ip_text), ip is not None,
                user_text, len(user_text), user is not None, pid is not None, _pid_value(pid),
                min(event.repeat, _INT64_MAX), self._source_index(event.source), event.position,
            )
        )
        if status & SWEPT:
            self.sweep_python_rules(event.epoch)
        return tuple(self.conclude_thresholds()) if status & THRESHOLD else ()

    def advance(self, epoch: float) -> None:
        """:meth:`Engine.advance`."""
        if epoch >= self.next_sweep:
            self.sweep(epoch)

    def sweep(self, now: float) -> None:
        """:meth:`Engine.sweep`: the library's rules and bans there, the recidive rules here."""
        _check(self._dll.bgn_engine_sweep(self._handle, now))
        self.sweep_python_rules(now)

    def sweep_python_rules(self, now: float) -> None:
        """The sweep of the rules counted here, at the event time the library swept at."""
        self._sweep_rules(self._python_rules, now)

    @property
    def next_sweep(self) -> float:
        """:attr:`Engine.next_sweep`, the library's clock."""
        return float(self._dll.bgn_engine_next_sweep(self._handle))

    @property
    def stats(self) -> dict[str, RuleStats]:
        """:attr:`Engine.stats`: ``events`` and ``while_banned`` of the native rules come from the library."""
        counts = (ctypes.c_int64 * (2 * len(self._native_rules)))()
        _check(self._dll.bgn_engine_stats(self._handle, counts, len(counts)))
        for index, rule in enumerate(self._native_rules):
            rule.stats.events, rule.stats.while_banned = counts[2 * index], counts[2 * index + 1]
        return super().stats

    @property
    def tracked_keys(self) -> int:
        """:attr:`Engine.tracked_keys` on both sides."""
        return _check(self._dll.bgn_engine_tracked_keys(self._handle)) + sum(
            len(rule.windows) for rule in self._python_rules
        )

    def active_bans(self) -> dict[str, float]:
        """:meth:`Engine.active_bans`, from the library."""
        size = _check(self._dll.bgn_engine_active(self._handle, None, 0))
        buffer = ctypes.create_string_buffer(max(size, 1))
        if _check(self._dll.bgn_engine_active(self._handle, buffer, len(buffer))) != size:
            raise NativeError("the active bans changed while being read")
        data, at, active = buffer.raw[:size], 0, {}
        while at < size:
            (length,) = _ACTIVE_ENTRY.unpack_from(data, at)
            target = data[at + 4 : at + 4 + length].decode("utf-8", "surrogatepass")
            (active[target],) = _EXPIRY.unpack_from(data, at + 4 + length)
            at += 4 + length + 8
        return active

    def export_counts(self, *, portable_only: bool = False) -> EngineCounts:
        """Refused: the event rules' windows live in the library, which does not hand them out. Replays, the
        only users of this engine, start from nothing; bastiond carries counts with :class:`Engine`."""
        raise TypeError("the native engine's counts stay in the library: carry counts with rules.Engine")

    def import_counts(self, counts: EngineCounts) -> int:
        """Refused, as :meth:`export_counts`."""
        raise TypeError("the native engine's counts stay in the library: carry counts with rules.Engine")

    def _count_ban(self, ban: Decision) -> list[Decision]:
        """:meth:`Engine._count_ban`, noting the newest entry of each window it extended."""
        decisions = super()._count_ban(ban)
        for rule in self._python_rules:
            window = rule.windows.get(ban.target)
            if window is not None:
                heapq.heappush(self._newest[id(rule)], (window[-rule.stride], ban.target))
        return decisions

    def _forget_stale_windows(self, rule: _Rule, cutoff: float) -> None:
        """:meth:`Engine._forget_stale_windows` without reading every window: the recidive rules keep a
        window per banned target for a day, and sweeping all of them every minute of log time cost more
        than everything else the native path leaves to Python. Every newest entry is in the heap (only
        :meth:`_count_ban` extends these windows), so the windows popped here are exactly the stale ones;
        the order of deletion does not change the order of the others (the ``max_keys`` cap's)."""
        newest = self._newest[id(rule)]
        windows = rule.windows
        while newest and newest[0][0] < cutoff:
            _epoch, key = heapq.heappop(newest)
            window = windows.get(key)
            if window is not None and window[-rule.stride] < cutoff:
                del windows[key]

    # --- thresholds and the silence hooks -----------------------------------------------------------------

    def conclude_thresholds(self) -> list[Decision]:
        """Decide the threshold the library stopped at, and every further one of the same event."""
        decisions: list[Decision] = []
        waiting = True
        while waiting:
            decisions.extend(self._conclude_threshold())
            waiting = _check(self._dll.bgn_engine_resume(self._handle)) == THRESHOLD
        return decisions

    def _conclude_threshold(self) -> list[Decision]:
        info = self._info
        status = _check(
            self._dll.bgn_engine_threshold(
                self._handle, info, self._key, len(self._key), self._user, len(self._user), self._evidence,
                len(self._evidence) // 3,
            )
        )
        if status != 0:  # a buffer too small: grow it to what the library said, and ask again
            self._key = ctypes.create_string_buffer(max(info[3], 1))
            self._user = ctypes.create_string_buffer(max(info[4], 1))
            self._evidence = (ctypes.c_double * (3 * info[5]))()
            return self._conclude_threshold()
        rule_index, code, count, key_length, user_length, entries, epoch_bits = info
        (epoch,) = _EXPIRY.unpack(_BITS.pack(epoch_bits))
        key = self._key.raw[:key_length].decode("utf-8", "surrogatepass")
        user = None if user_length < 0 else self._user.raw[:user_length].decode("utf-8", "surrogatepass")
        values, names = self._evidence, self._source_names
        found = tuple(
            Evidence(values[3 * entry], names[int(values[3 * entry + 2])], int(values[3 * entry + 1]))
            for entry in range(entries)
        )
        return self._conclude(
            self._native_rules[rule_index], key, kind=self._codes[code], epoch=epoch, user=user, count=count,
            found=found,
        )

    def _extend_ban(self, target: str, until: float) -> None:
        data = _text(target)
        _check(self._dll.bgn_engine_ban(self._handle, data, len(data), until))

    def _lift_ban(self, target: str) -> None:
        data = _text(target)
        _check(self._dll.bgn_engine_lift(self._handle, data, len(data)))

    def _set_quiet(self, rule: _Rule, key: str, until: float) -> None:
        index = self._native_index.get(id(rule))
        if index is None:
            super()._set_quiet(rule, key, until)
            return
        data = _text(key)
        _check(self._dll.bgn_engine_quiet(self._handle, index, data, len(data), until))


def _pid_value(pid: int | None) -> float:
    """``float(event.pid)`` as the connection windows store it (a pid past a double's range: infinity)."""
    if pid is None:
        return 0.0
    try:
        return float(pid)
    except OverflowError:
        return float("inf")
