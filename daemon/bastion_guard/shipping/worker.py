"""One delivery thread per sink: spool -> sink, with retries, back-off and dead-lettering.

The worker owns every delivery guarantee so that sinks only translate and transmit:

1. it reads a batch after its sink's cursor and hands it to :meth:`Sink.deliver`;
2. records that come back ``RETRY`` are sent again (only those) after a back-off with full jitter
   (``uniform(0, min(cap, initial * 2**attempt))``, the AWS "exponential backoff and jitter" scheme, so a
   fleet of bastions coming back after an outage does not hammer the cluster in step), never shorter than
   a ``retry_after_secs`` the server asked for; there is no retry limit: the spool's bounds are the limit;
3. ``REJECTED`` records go to the dead-letter store and ``DELIVERED`` / ``SKIPPED`` ones are done;
4. only when every record of the batch is done does the cursor move, in the same transaction as the
   dead letters. A crash in between re-sends the batch: ids are deterministic, so the far end sees
   duplicates (Elasticsearch answers 409, counted as delivered), never a gap.

Clock and sleep are injectable, so tests run a six-hour outage in simulated time. ``stop()`` interrupts a
back-off sleep at once; a batch cut short is simply sent again by the next start.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from bastion_guard.shipping.base import Delivery, Health, Result, Sink
from bastion_guard.shipping.records import Record
from bastion_guard.shipping.spool import Queued, Spool, SpoolError

log = logging.getLogger("bastiond.shipping")

_IDLE_SECS = 0.5  # how long an idle worker waits for a wake-up before looking at the spool again


class DeliveryMetrics(Protocol):
    """What a worker reports; :class:`bastion_guard.metrics.Metrics` implements it (tests may count)."""

    def output_events(self, output: str, result: str, count: int) -> None:
        """``count`` records of ``output`` had ``result`` (sent, skipped, failed, retried, rejected)."""

    def observe_send(self, output: str, seconds: float) -> None:
        """One call to the sink took ``seconds``."""

    def set_output_up(self, output: str, up: bool) -> None:
        """Whether the far end works, as far as the worker knows."""


class _NoMetrics:
    """Reports nowhere (a worker built without metrics, as in tests that look at the spool only)."""

    def output_events(self, output: str, result: str, count: int) -> None:
        """Nothing."""

    def observe_send(self, output: str, seconds: float) -> None:
        """Nothing."""

    def set_output_up(self, output: str, up: bool) -> None:
        """Nothing."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential back-off with full jitter; ``rng`` is injectable for tests."""

    initial_secs: float = 1.0
    max_secs: float = 60.0

    def delay(self, attempt: int, rng: random.Random, retry_after: float | None = None) -> float:
        """How long to wait before attempt ``attempt + 1`` (``attempt`` >= 1 failures so far)."""
        ceiling = min(self.max_secs, self.initial_secs * 2 ** min(attempt - 1, 62))
        delay = rng.uniform(0.0, ceiling)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_secs * 10))  # honour the server, within reason
        return delay


@dataclass
class WorkerStatus:
    """What ``bastionctl status`` shows for one sink."""

    health: Health
    delivered: int = 0
    failing_since: float | None = None
    last_error: str = ""


@dataclass
class _Tally:
    """One delivery attempt, summed up: records to send again, how many of them the sink only held back."""

    again: list[Queued] = field(default_factory=list)
    held: int = 0
    retry_after: float | None = None


class Worker:
    """Delivers one sink's share of the spool from a thread. ``start``, then ``stop`` and ``join``."""

    def __init__(
        self, sink: Sink, spool: Spool, *, metrics: DeliveryMetrics | None = None, batch_size: int = 2000,
        batch_bytes: int = 8 * 1024 * 1024,
        backoff: Backoff | None = None, clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None, rng: random.Random | None = None,
    ) -> None:
        self.sink = sink
        self.spool = spool
        self.status = WorkerStatus(Health(False, "not checked yet"))
        self._metrics: DeliveryMetrics = metrics or _NoMetrics()
        # 2000 records or 8 MiB of spooled JSON (about twice that as ECS NDJSON): inside Elasticsearch's 100 MB
        # request limit even for 64 KiB lines, and large enough that per-request costs stay small.
        # A sink that coalesces (webhook digests) sees a whole spray at once instead of 2000-record slices.
        self._batch_size = max(batch_size, int(getattr(sink, "preferred_batch_size", 0)))
        self._batch_bytes = batch_bytes
        self._backoff = backoff or Backoff()
        self._clock = clock
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._sleep = sleep or self._stop.wait
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not cryptography)
        self._thread: threading.Thread | None = None

    # --- life cycle ------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Check the far end once, then deliver from a daemon thread until :meth:`stop`."""
        self._thread = threading.Thread(target=self.run, name=f"sink:{self.sink.name}", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        """New records are in the spool: an idle worker looks now instead of at its next poll."""
        self._wake.set()

    def stop(self) -> None:
        """Ask the thread to finish; a back-off sleep ends at once."""
        self._stop.set()
        self._wake.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread, then close the sink."""
        if self._thread is not None:
            self._thread.join(timeout)
        self.sink.close()

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stop.is_set()

    # --- delivery --------------------------------------------------------------------------------------------

    def run(self) -> None:
        """The thread's body: check health, then deliver batches until stopped."""
        self._check_health()
        while not self._stop.is_set():
            if not self.run_once():
                self._wake.wait(_IDLE_SECS)
                self._wake.clear()

    def run_once(self) -> bool:
        """Deliver one batch to the end (or until stopped); return whether there was anything to deliver."""
        try:
            batch = self.spool.read(self.sink.name, self._batch_size, self._batch_bytes)
        except SpoolError as error:
            log.error("sink %s: %s", self.sink.name, error)
            self._sleep(self._backoff.max_secs)
            return False
        if not batch:
            return False
        rejected = self._deliver(batch)
        if rejected is None:  # stopped before the batch was done: it is sent again after the restart
            return True
        try:
            self.spool.complete(self.sink.name, batch[-1].seq, rejected)
        except SpoolError as error:  # the batch will be sent again: duplicates, never a gap
            log.error("sink %s: %s", self.sink.name, error)
        return True

    def _deliver(self, batch: Sequence[Queued]) -> list[tuple[Record, str]] | None:
        """Send until nothing is left to retry; return the rejected records, or None if stopped first."""
        pending = list(batch)
        rejected: list[tuple[Record, str]] = []
        attempt = 0
        while pending:
            if attempt:
                self._metrics.output_events(self.sink.name, "retried", len(pending))
            deliveries = self._send(pending)
            tally = self._tally(pending, deliveries, rejected)
            if not tally.again:
                self._recovered()
                return rejected
            failed = len(tally.again) - tally.held
            if failed:
                attempt += 1
                reason = next((d.reason for d in deliveries if d.result is Result.RETRY), "") or "retry"
                self._failed(failed, reason)
                delay = self._backoff.delay(attempt, self._rng, tally.retry_after)
            else:  # only held back by the sink's own pacing: wait as long as it asks, no back-off, not down
                self._recovered()
                delay = tally.retry_after if tally.retry_after is not None else self._backoff.initial_secs
            self._sleep(delay)
            if self._stop.is_set():
                return None
            pending = tally.again
        return rejected

    def _tally(self, items: Sequence[Queued], deliveries: Sequence[Delivery],
               rejected: list[tuple[Record, str]]) -> _Tally:
        """Count one attempt's results into metrics; collect what must be sent again and what was rejected."""
        tally = _Tally()
        counts = dict.fromkeys(("sent", "skipped", "rejected", "held"), 0)
        for item, delivery in zip(items, deliveries, strict=True):
            result = delivery.result
            if result is Result.DELIVERED or result is Result.SKIPPED:
                counts["sent" if result is Result.DELIVERED else "skipped"] += 1
            elif result is Result.REJECTED:
                counts["rejected"] += 1
                record = item.record  # built here for an event: dead letters are records
                rejected.append((record, delivery.reason or "rejected"))
                log.warning("sink %s rejected record %s: %s", self.sink.name, record.id, delivery.reason)
            else:  # RETRY or HELD
                counts["held"] += result is Result.HELD
                tally.again.append(item)
                if delivery.retry_after_secs is not None:
                    tally.retry_after = max(tally.retry_after or 0.0, delivery.retry_after_secs)
        for result_name, count in counts.items():
            if count:
                self._metrics.output_events(self.sink.name, result_name, count)
        tally.held = counts["held"]
        self.status.delivered += counts["sent"] + counts["skipped"]
        return tally

    def _send(self, items: Sequence[Queued]) -> Sequence[Delivery]:
        started = self._clock()
        # A sink that can take the spool's items as they are (events not yet made records) says so by
        # having ``deliver_queued``; every other sink gets records.
        deliver_queued: Callable[[Sequence[Queued]], Sequence[Delivery]] | None = getattr(
            self.sink, "deliver_queued", None)
        try:
            deliveries = (deliver_queued(items) if deliver_queued is not None
                          else self.sink.deliver([item.record for item in items]))
        except Exception as error:  # a sink bug must cost a retry, not the thread (and the shipping with it)
            log.exception("sink %s raised instead of reporting", self.sink.name)
            deliveries = [Delivery(Result.RETRY, f"sink error: {type(error).__name__}")] * len(items)
        self._metrics.observe_send(self.sink.name, max(0.0, self._clock() - started))
        if len(deliveries) != len(items):
            log.error("sink %s answered %d results for %d records", self.sink.name, len(deliveries), len(items))
            deliveries = [Delivery(Result.RETRY, "sink answered the wrong number of results")] * len(items)
        return deliveries

    def _failed(self, count: int, reason: str) -> None:
        self._metrics.output_events(self.sink.name, "failed", count)
        if self.status.failing_since is None:
            self.status.failing_since = time.time()
            log.warning("sink %s failing (%s); retrying with back-off, records wait in the spool",
                        self.sink.name, reason)
            self._metrics.set_output_up(self.sink.name, False)
        self.status.last_error = reason
        self.status.health = Health(False, reason)

    def _recovered(self) -> None:
        if self.status.failing_since is not None:
            log.info("sink %s delivering again", self.sink.name)
        if self.status.failing_since is not None or not self.status.health.ok:
            self.status.health = Health(True, "delivering")
            self._metrics.set_output_up(self.sink.name, True)
        self.status.failing_since = None

    def _check_health(self) -> None:
        try:
            health = self.sink.health()
        except Exception as error:  # health() must not raise; if it does, it is a failed check
            health = Health(False, f"health check failed: {type(error).__name__}")
        self.status.health = health
        self._metrics.set_output_up(self.sink.name, health.ok)
        if health.ok:
            log.info("sink %s: %s", self.sink.name, health.detail)
        else:
            log.warning("sink %s not healthy at start: %s (records wait in the spool)", self.sink.name, health.detail)


__all__ = ["Backoff", "DeliveryMetrics", "Worker", "WorkerStatus"]
