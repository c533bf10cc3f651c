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
# 10 ** n for the fraction digits a stamp may carry (the envelope regexes allow 1..9): the same ints
# ``10 ** len(fraction)`` yields, without computing a power per line.
FRACTION_SCALE = tuple(10**n for n in range(10))


class TimestampReader:
    """Turn the timestamp forms of syslog envelopes into ``(epoch, utc_offset)``.

    ``zone`` is the zone of traditional stamps (``None``: the host's local zone, DST included);
    ``reference`` is the epoch that year inference works against.
    """

    __slots__ = ("_iso_cache", "_reference", "_trad_cache", "_zone")

    def __init__(self, reference: float, zone: tzinfo | None = None) -> None:
        self._reference = reference
        self._zone = zone
        self._trad_cache: dict[str, tuple[float, int] | None] = {}
        self._iso_cache: dict[str, tuple[float, int] | None] = {}

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
        return base[0] + int(fraction) / 10 ** len(fraction), base[1]

    def rfc3339(self, seconds: str, offset: str | None) -> tuple[float, int] | None:
        """The whole-second part of an RFC 3339 envelope stamp, from its groups as matched.

        ``seconds`` has ``T`` or a space in the middle; ``offset`` is ``Z``, ``+00:00``, ``+0000`` or
        absent (UTC). The caller adds the fraction (``int(fraction) / FRACTION_SCALE[len(fraction)]``)
        and caches the result per stamp text: a busy log repeats each second a few times, and a new
        second goes through the per-minute path of :meth:`_second`, so ``datetime`` parsing runs about
        once a minute.
        """
        return self._second(seconds.replace(" ", "T"), _colon_offset(offset or "Z"))

    def _second(self, seconds: str, offset: str) -> tuple[float, int] | None:
        """``("2026-11-28T20:02:18", "+00:00")`` via the start of its minute; exactly :func:`_parse_iso`.

        Whole-second epochs are integral floats, so minute + seconds is the same float a full parse
        gives. ``seconds`` is ``YYYY-MM-DDTHH:MM:SS`` (the envelope regex guarantees the shape); a
        seconds field past 59 is left to the full parse, which rejects it as before.
        """
        second = int(seconds[17:])
        if second > 59:
            return self.iso(seconds, None, offset)
        minute = self.iso(seconds[:17] + "00", None, offset)
        if minute is None:
            return None
        return minute[0] + second, minute[1]

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
            stamp = self._to_epoch((year, month_number, day_number, hour, minute, second))
            if stamp is not None and stamp[0] <= self._reference + _FUTURE_TOLERANCE:
                return stamp
        return None

    def _to_epoch(self, fields: tuple[int, int, int, int, int, int]) -> tuple[float, int] | None:
        year, month, day, hour, minute, second = fields
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
