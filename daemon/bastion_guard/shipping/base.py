"""The contract between the spool workers and the sinks.

A sink turns records into its wire format and transmits a batch; it reports per record what happened and
never retries or sleeps itself: the worker owns retries, back-off, dead-lettering and metrics, so every
sink gets the same delivery guarantees without re-implementing them.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from bastion_guard.shipping.records import Record


class Result(enum.StrEnum):
    """What happened to one record in one delivery attempt."""

    DELIVERED = "delivered"  # accepted by the far end (an idempotent duplicate counts as delivered)
    RETRY = "retry"  # a transient failure (429, 5xx, timeout, connection refused): try again later
    REJECTED = "rejected"  # the far end will never accept it as it is (mapping error, 4xx): dead-letter it
    SKIPPED = "skipped"  # not for this sink (a webhook that only wants alerts): done, nothing sent
    HELD = "held"  # deferred on purpose (a rate limit, a digest window): ask again after retry_after_secs;
    # unlike RETRY it is not a failure, so the sink is not reported down while it paces itself


@dataclass(frozen=True, slots=True)
class Delivery:
    """The outcome for one record; ``retry_after_secs`` carries a server's Retry-After when it gave one."""

    result: Result
    reason: str = ""
    retry_after_secs: float | None = None


@dataclass(frozen=True, slots=True)
class Health:
    """A sink's view of its far end, for ``bastionctl status`` and the start-up check."""

    ok: bool
    detail: str


class Sink(Protocol):
    """One destination. ``name`` is the configured name, used in metrics labels and the spool cursor.

    A sink may set ``preferred_batch_size`` (an int attribute) when it needs to see more records at once
    than the worker's default, for example a webhook that folds what is over its rate limit into digests.
    A sink may also have ``deliver_queued(items)``, taking the spool's
    :class:`~bastion_guard.shipping.spool.Queued` items as they are read (a parsed line as its event, with no
    record built): the worker calls it instead of :meth:`deliver` (the Elasticsearch sink, whose documents
    are written from the events directly); it answers as :meth:`deliver` does.
    """

    name: str

    def deliver(self, records: Sequence[Record]) -> Sequence[Delivery]:
        """Send ``records``; return one :class:`Delivery` per record, in order. Must not raise for
        transport errors: report them as ``RETRY`` (or ``REJECTED``) per record instead."""
        ...

    def health(self) -> Health:
        """Check the far end now (short timeout); never raises."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
