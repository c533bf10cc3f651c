"""Syslog timestamps to epoch seconds, cached per second because a busy log repeats them.

Traditional stamps (``Nov 28 19:51:34``) carry neither year nor zone. The year is inferred against a
reference time (the file's modification time when replaying, the clock when following): the latest year
that does not put the line more than two days after the reference. That keeps December lines in the old
year when a file is read in January, and a January line written by a clock slightly ahead of ours in the
new year.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, tzinfo

_MONTHS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1
    )
}
_FUTURE_TOLERANCE = timedelta(days=2).total_seconds()
_CACHE_LIMIT = 1 << 15
# 10 ** n for the fraction digits a stamp may carry (1..9); the same ints ``10 ** len(fraction)`` yields.
_FRACTION_SCALE = tuple(10**n for n in range(10))


class TimestampReader:
    """Turn the timestamp forms of syslog envelopes into ``(epoch, utc_offset)``.

    ``zone`` is the zone of traditional stamps (``None``: the host's local zone, DST included);
    ``reference`` is the epoch that year inference works against.
    """

    __slots__ = ("_iso_cache", "_raw_cache", "_reference", "_trad_cache", "_zone")

    def __init__(self, reference: float, zone: tzinfo | None = None) -> None:
        self._reference = reference
        self._zone = zone
        self._trad_cache: dict[str, tuple[float, int] | None] = {}
        self._iso_cache: dict[str, tuple[float, int] | None] = {}
        # RFC 3339 envelope stamps keyed by their text as written (seconds + offset, un-normalised).
        self._raw_cache: dict[str, tuple[float, int] | None] = {}

    @property
    def reference(self) -> float:
        """The epoch that year inference is anchored to."""
        return self._reference

    def advance(self, epoch: float) -> None:
        """Move the reference forward (never back), e.g. to the clock while following a live log."""
        if epoch > self._reference:
            self._reference = epoch
            self._trad_cache.clear()

    def traditional(self, month: str, day: str, clock: str) -> tuple[float, int] | None:
        """``("Nov", "28", "19:51:34")`` to ``(epoch, utc_offset)``, or ``None`` if it is no valid date."""
        key = f"{month} {day} {clock}"
        cache = self._trad_cache
        try:
            return cache[key]
        except KeyError:
            pass
        result = self._infer_year(month, day, clock)
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[key] = result
        return result

    def iso(self, seconds: str, fraction: str | None, offset: str) -> tuple[float, int] | None:
        """``("2026-11-28T20:02:18", "053767", "+00:00")`` to ``(epoch, utc_offset)``."""
        key = seconds + offset
        cache = self._iso_cache
        try:
            base = cache[key]
        except KeyError:
            base = _parse_iso(seconds, offset)
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            cache[key] = base
        if base is None or not fraction:
            return base
        return base[0] + int(fraction) / _FRACTION_SCALE[len(fraction)], base[1]

    def rfc3339(self, seconds: str, fraction: str | None, offset: str | None) -> tuple[float, int] | None:
        """Like :meth:`iso` for the envelope's groups as matched: ``T`` or space, offset ``+0000`` or absent.

        The hot path: one dict lookup on the stamp text as written, so the normalisation (space to
        ``T``, ``+0000`` to ``+00:00``, missing offset to ``Z``) runs once per distinct second.
        """
        key = seconds + offset if offset else seconds
        cache = self._raw_cache
        try:
            base = cache[key]
        except KeyError:
            base = self.iso(seconds.replace(" ", "T"), None, _colon_offset(offset or "Z"))
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            cache[key] = base
        if base is None or not fraction:
            return base
        return base[0] + int(fraction) / _FRACTION_SCALE[len(fraction)], base[1]

    def _infer_year(self, month: str, day: str, clock: str) -> tuple[float, int] | None:
        month_number = _MONTHS.get(month)
        if month_number is None:
            return None
        try:
            day_number = int(day)
            hour, minute, second = (int(part) for part in clock.split(":"))
        except ValueError:
            return None
        reference_year = datetime.fromtimestamp(self._reference, UTC).year
        for year in (reference_year + 1, reference_year, reference_year - 1):
            stamp = self._to_epoch(year, month_number, day_number, hour, minute, second)
            if stamp is not None and stamp[0] <= self._reference + _FUTURE_TOLERANCE:
                return stamp
        return None

    def _to_epoch(
        self, year: int, month: int, day: int, hour: int, minute: int, second: int
    ) -> tuple[float, int] | None:
        try:
            if self._zone is not None:
                aware = datetime(year, month, day, hour, minute, second, tzinfo=self._zone)
                offset = aware.utcoffset()
                return aware.timestamp(), int(offset.total_seconds()) if offset else 0
            datetime(year, month, day, hour, minute, second)  # validates (29 Feb, 31 Apr)
            epoch = time.mktime((year, month, day, hour, minute, second, 0, 0, -1))
        except (ValueError, OverflowError):
            return None
        return epoch, time.localtime(epoch).tm_gmtoff


def _colon_offset(offset: str) -> str:
    if len(offset) == 5:  # +0000
        return f"{offset[:3]}:{offset[3:]}"
    return offset


def _parse_iso(seconds: str, offset: str) -> tuple[float, int] | None:
    try:
        naive = datetime.fromisoformat(seconds)
    except ValueError:
        return None
    if offset in ("Z", "z"):
        return naive.replace(tzinfo=UTC).timestamp(), 0
    sign = -1 if offset[0] == "-" else 1
    try:
        hours, minutes = int(offset[1:3]), int(offset[4:6])
    except ValueError:
        return None
    utc_offset = sign * (hours * 3600 + minutes * 60)
    return naive.replace(tzinfo=UTC).timestamp() - utc_offset, utc_offset
