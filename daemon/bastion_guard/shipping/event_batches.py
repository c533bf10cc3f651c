"""The compact stored form of one loop batch of parsed events: one spool row instead of one row per record.

The loop spools every parsed line. Building each line's record (a body dict and a blake2b id) and inserting
one indexed SQLite row per record cost more per event than parsing and deciding it, so the loop stores the
:class:`~bastion_guard.events.Event` tuples themselves, as one orjson array per batch (about 0.5 µs an event),
and the workers turn them into records (:func:`~bastion_guard.shipping.records.event_record`) when they read
them. Ids are the same as before, only computed later, on the shipping side: they depend on the event alone.

Stored form: ``[1, bastion, [[epoch, utc_offset, host, ..., raw], ...]]``, the fields in
:class:`~bastion_guard.events.Event` order (enums as their values). The leading ``1`` is the format version.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import orjson

from bastion_guard.events import Event, Kind, Outcome

FORMAT = 1
_KIND = Event._fields.index("kind")
_OUTCOME = Event._fields.index("outcome")
# Value -> member by dict: calling the enum (``Kind(value)``) costs about ten times as much, twice an event.
_KINDS = {kind.value: kind for kind in Kind}
_OUTCOMES = {outcome.value: outcome for outcome in Outcome}

# What identifies a line across a replay: the parts of its record id that do not depend on this host.
ReplayKey = tuple[str, int, float, str]


def encode_events(bastion: str, events: Sequence[Event]) -> bytes:
    """One batch's stored form (``default=tuple``: orjson does not serialise named tuples itself)."""
    return orjson.dumps([FORMAT, bastion, events], default=tuple)


def decode_events(stored: bytes) -> tuple[str, list[Event]]:
    """Inverse of :func:`encode_events`: the bastion's name and the events. ValueError for anything else (a
    damaged row, or a format a newer version wrote)."""
    kinds, outcomes = _KINDS, _OUTCOMES
    events = []
    try:
        version, bastion, rows = orjson.loads(stored)
        if version != FORMAT:
            raise ValueError(f"format {version!r}")
        for row in rows:
            row[_KIND] = kinds[row[_KIND]]
            row[_OUTCOME] = outcomes[row[_OUTCOME]]
            events.append(Event(*row))
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"not an event batch of format {FORMAT}: {type(error).__name__}: {error}") from None
    return str(bastion), events


def replay_key(event: Event) -> ReplayKey:
    """What makes a line the same line again when a crash makes the loop read it twice."""
    return event.source, event.position, event.epoch, event.raw


def replay_keys(stored: Iterable[bytes]) -> set[ReplayKey]:
    """The replay keys of every event in ``stored`` batches."""
    keys: set[ReplayKey] = set()
    for body in stored:
        try:
            events = decode_events(body)[1]
        except ValueError:
            continue  # nothing of it can be delivered either (the worker reports it)
        keys.update(replay_key(event) for event in events)
    return keys


__all__ = ["FORMAT", "ReplayKey", "decode_events", "encode_events", "replay_key", "replay_keys"]
