"""One spooled batch row as the workers read it: decoded only as far as a sink needs.

The Elasticsearch sink needs the bulk NDJSON of the row's events and nothing else; with the native
library (``bastion_guard.native.ecs``) the row is only checked and indexed when read, and each run of
its events becomes NDJSON in one call: no :class:`Event` is built for it. Sinks that want events (GELF,
webhooks, a record for a dead letter) get them from :meth:`SpooledBatch.events`, decoded by the
reference (``decode_events``) on first use and kept. Without the library, or for a row the library does
not read exactly as ``decode_events`` does, the row is decoded at once, as it always was.
"""

from __future__ import annotations

from bastion_guard.events import Event
from bastion_guard.native.ecs import NativeEcs, RowIndex, load_ecs
from bastion_guard.shipping.ecs_ndjson import native_frame, native_table
from bastion_guard.shipping.event_batches import decode_events


class SpooledBatch:
    """A batch row's events (``count`` of them, shipped from ``bastion``); see the module docstring."""

    __slots__ = ("_events", "_index", "_native", "bastion", "body", "count")

    def __init__(self, body: bytes, bastion: str, count: int, *, events: list[Event] | None = None,
                 index: RowIndex | None = None, native: NativeEcs | None = None) -> None:
        """Use :meth:`read` (or :meth:`empty`)."""
        self.body = body
        self.bastion = bastion
        self.count = count
        self._events = events
        self._index = index
        self._native = native

    @classmethod
    def read(cls, body: bytes, native: NativeEcs | None = None, *, use_native: bool = True) -> SpooledBatch:
        """The batch stored as ``body``; ValueError if ``decode_events`` cannot read it (damaged, or a newer
        format). ``native`` defaults to the library :func:`load_ecs` found (``use_native=False``: none)."""
        if use_native and native is None:
            native = load_ecs()[0]
        index = native.index(body, native_table()) if native is not None else None
        if index is None:
            bastion, events = decode_events(body)
            return cls(body, bastion, len(events), events=events)
        return cls(body, index.bastion, index.count, index=index, native=native)

    @classmethod
    def empty(cls) -> SpooledBatch:
        """A batch with nothing left to deliver (unreadable, or gone from the spool)."""
        return cls(b"", "", 0, events=[])

    @property
    def native(self) -> bool:
        """Whether the native path writes this row's NDJSON (it read the row as ``decode_events`` does)."""
        return self._native is not None and self._index is not None

    def events(self) -> list[Event]:
        """Every event of the row (decoded on first use)."""
        events = self._events
        if events is None:
            events = self._events = decode_events(self.body)[1]  # index() read it, so decode_events can
        return events

    def ecs_lines(self, first: int, stop: int, namespace: str) -> bytes | None:
        """The bulk NDJSON of events ``first`` to ``stop - 1`` from the native path, or None when there is
        none for this row (then :func:`~bastion_guard.shipping.ecs_ndjson.event_lines` of each event is)."""
        if self._native is None or self._index is None:
            return None
        return self._native.lines(self.body, self._index, first, stop, table=native_table(),
                                  frame=native_frame(namespace, self.bastion))


__all__ = ["SpooledBatch"]
