"""Source threads: read a file or the journal and hand batches to the processing loop.

A reader thread only reads; parsing happens on the processing loop, which also saves positions. When a
source fails (file unreadable, journalctl exited), the thread reports the error once as a batch, backs
off and reopens the source from the last position it handed over.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from bastion_guard.errors import BastionError
from bastion_guard.events import Event
from bastion_guard.parsing import LineParser, LineStatus
from bastion_guard.reading import SourceLine
from bastion_guard.runtime.config import SourceConfig
from bastion_guard.sources.base import Batch, FilePosition
from bastion_guard.sources.file import FileFollower
from bastion_guard.state.records import Position

if TYPE_CHECKING:
    from bastion_guard.sources.journald import JournalRecord

log = logging.getLogger("bastiond.sources")

_WAIT_SECS = 1.0
_BACKOFF_SECS = (1.0, 2.0, 5.0, 10.0, 30.0)
_JOURNAL_IDENTITY = "journal"


@dataclass
class SourceBatch:
    """Lines or journal records of one source, the position after them, or an error to report."""

    source: str
    position: Position | None
    lines: list[SourceLine] = field(default_factory=list)
    records: list[JournalRecord] = field(default_factory=list)
    skipped_long: int = 0
    error: str | None = None

    def parse_with(self, parser: LineParser) -> Iterator[Event | LineStatus]:
        """Parse every line or record of the batch, in order."""
        name = self.source
        parse = parser.parse
        for line in self.lines:
            yield parse(line.text, name, line.offset)
        if self.records:
            # Imported here: hosts that follow files never need the journal's machinery.
            from bastion_guard.sources.journald import journal_event  # noqa: PLC0415

            for index, record in enumerate(self.records):
                yield journal_event(parser, record, index)


class _Follower(Protocol):
    def read_available(self, max_lines: int = 10_000) -> Any: ...
    def wait(self, timeout: float) -> None: ...
    def close(self) -> None: ...


class SourceReader(threading.Thread):
    """One thread per source: read what is available, hand it over, wait for more."""

    def __init__(
        self,
        name: str,
        config: SourceConfig,
        saved: Position | None,
        inbox: queue.Queue[Any],
        stopping: threading.Event,
    ) -> None:
        super().__init__(name=f"source {name}", daemon=True)
        self._source = name
        self._config = config
        self._position = saved
        self._inbox = inbox
        self._stopping = stopping

    def run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                follower = self._open()
            except BastionError as error:
                failures = self._report(error, failures)
                continue
            try:
                self._follow(follower)
                return
            except BastionError as error:
                failures = self._report(error, failures)
            finally:
                follower.close()

    def _open(self) -> _Follower:
        config = self._config
        saved = self._position
        if config.type == "file":
            assert config.path is not None  # noqa: S101 - the config loader requires a path for files
            start = None
            if saved is not None and saved.identity is not None:
                start = FilePosition(saved.identity, saved.offset)
            return FileFollower(config.path, start, from_end=config.from_end)
        # Imported here: hosts that follow files never need the journal's machinery.
        from bastion_guard.sources.journald import JournalFollower, JournalPosition  # noqa: PLC0415

        cursor = saved.cursor if saved is not None else None
        return JournalFollower(JournalPosition(cursor) if cursor else None, from_end=config.from_end)

    def _follow(self, follower: _Follower) -> None:
        # Remember where a fresh follower started (from_end opens at the end): a reopen after an error must
        # continue from there, not from a new end, or lines written in between would be skipped.
        start = getattr(follower, "position", None)
        if self._position is None and isinstance(start, FilePosition):
            self._position = Position(self._source, start.identity, start.offset, None)
        put = self._put
        while not self._stopping.is_set():
            batch = follower.read_available()
            if batch is None:
                follower.wait(_WAIT_SECS)
                continue
            if isinstance(batch, Batch):
                position = Position(self._source, batch.position.identity, batch.position.offset, None)
                put(SourceBatch(self._source, position, lines=batch.lines, skipped_long=batch.skipped_long))
            else:
                position = Position(self._source, _JOURNAL_IDENTITY, 0, batch.position.cursor)
                put(SourceBatch(self._source, position, records=batch.records))
            self._position = position

    def _put(self, batch: SourceBatch) -> None:
        # Block while the loop is behind (back-pressure), but wake up to notice a stop request.
        while not self._stopping.is_set():
            try:
                self._inbox.put(batch, timeout=_WAIT_SECS)
                return
            except queue.Full:
                continue

    def _report(self, error: BastionError, failures: int) -> int:
        log.error("source %s: %s", self._source, error)
        self._put(SourceBatch(self._source, None, error=str(error)))
        self._stopping.wait(_BACKOFF_SECS[min(failures, len(_BACKOFF_SECS) - 1)])
        return failures + 1


def open_source(
    name: str, config: SourceConfig, saved: Position | None, inbox: queue.Queue[Any], stopping: threading.Event
) -> SourceReader:
    """A reader thread for ``config`` resuming at ``saved`` (not started)."""
    return SourceReader(name, config, saved, inbox, stopping)
