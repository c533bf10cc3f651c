"""The delivery worker: retries with full-jitter back-off, Retry-After, dead letters, cursor discipline, stop.

The sink here is a scripted in-process sink (it implements the Sink protocol, answering what each test
tells it to); the spool is the real one. Time is simulated: ``sleep`` advances a fake clock.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from bastion_guard.shipping.base import Delivery, Health, Result
from bastion_guard.shipping.records import Record, RecordKind, action_record
from bastion_guard.shipping.spool import Spool
from bastion_guard.shipping.worker import Backoff, Worker

Answer = Callable[[Record], Delivery]


class ScriptedSink:
    """A sink whose n-th delivery call answers each record with ``script[n]`` (the last one repeats)."""

    def __init__(self, name: str, script: Sequence[Answer]) -> None:
        self.name = name
        self.script = list(script)
        self.calls: list[list[str]] = []
        self.closed = False

    def deliver(self, records: Sequence[Record]) -> Sequence[Delivery]:
        """Answer per the script; remember which ids were sent."""
        answer = self.script[min(len(self.calls), len(self.script) - 1)]
        self.calls.append([record.id for record in records])
        return [answer(record) for record in records]

    def health(self) -> Health:
        """Always fine."""
        return Health(True, "scripted")

    def close(self) -> None:
        """Remember the close."""
        self.closed = True


class FakeTime:
    """A clock that only moves when the worker sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        """Now."""
        return self.now

    def sleep(self, seconds: float) -> None:
        """Advance."""
        self.sleeps.append(seconds)
        self.now += seconds


class CountingMetrics:
    """Counts what the worker reports."""

    def __init__(self) -> None:
        self.events: Counter[str] = Counter()
        self.up: list[bool] = []

    def output_events(self, output: str, result: str, count: int) -> None:
        """Count."""
        self.events[result] += count

    def observe_send(self, output: str, seconds: float) -> None:
        """Ignore."""

    def set_output_up(self, output: str, up: bool) -> None:
        """Remember."""
        self.up.append(up)


def ok(_record: Record) -> Delivery:
    """Delivered."""
    return Delivery(Result.DELIVERED)


def down(_record: Record) -> Delivery:
    """Connection refused."""
    return Delivery(Result.RETRY, "connection refused")


def records(count: int) -> list[Record]:
    """Distinct records."""
    return [action_record(RecordKind.AUDIT, 1.0 + n, "b", number=n) for n in range(count)]


def worker_for(tmp_path: Path, sink: ScriptedSink, time: FakeTime, metrics: CountingMetrics | None = None,
               backoff: Backoff | None = None) -> Worker:
    """A worker on a fresh spool with fake time and a seeded jitter."""
    spool = Spool.open(tmp_path / "spool.db", [sink.name])
    return Worker(sink, spool, metrics=metrics, backoff=backoff or Backoff(1.0, 60.0), clock=time.clock,
                  sleep=time.sleep, rng=random.Random(7))  # noqa: S311 (jitter, seeded)


def test_full_jitter_backoff_grows_to_its_cap_and_never_gives_up(tmp_path: Path) -> None:
    """Eight hours down: each wait is within [0, min(cap, 2**n)] and the batch is delivered when it comes back."""
    sink = ScriptedSink("es", [down])

    class OutageTime(FakeTime):
        def sleep(self, seconds: float) -> None:
            super().sleep(seconds)
            if self.now > 8 * 3600:
                sink.script = [ok]

    time = OutageTime()
    metrics = CountingMetrics()
    worker = worker_for(tmp_path, sink, time, metrics)
    worker.spool.append(records(3))
    assert worker.run_once()
    for attempt, slept in enumerate(time.sleeps, start=1):
        assert 0.0 <= slept <= min(60.0, 2.0 ** (attempt - 1))
    assert len(time.sleeps) > 8 * 3600 / 60, "the waits stay below the 60 s cap"
    assert max(time.sleeps[10:]) > 30, "full jitter spreads over the whole range up to the cap"
    assert worker.spool.read("es", 10) == [], "delivered: the cursor moved"
    assert metrics.events["sent"] == 3
    assert metrics.events["failed"] == 3 * len(time.sleeps)
    assert metrics.events["retried"] == 3 * len(time.sleeps)
    assert metrics.up == [False, True]


def test_only_the_records_to_retry_are_sent_again_and_retry_after_is_honoured(tmp_path: Path) -> None:
    """A partial failure re-sends only the failed item, after at least the server's Retry-After."""
    time = FakeTime()
    batch = records(3)

    def middle_throttled(record: Record) -> Delivery:
        if record.id == batch[1].id:
            return Delivery(Result.RETRY, "429", retry_after_secs=30.0)
        return Delivery(Result.DELIVERED)

    sink = ScriptedSink("es", [middle_throttled, ok])
    worker = worker_for(tmp_path, sink, time, backoff=Backoff(0.5, 5.0))
    worker.spool.append(batch)
    assert worker.run_once()
    assert sink.calls == [[r.id for r in batch], [batch[1].id]]
    assert time.sleeps[0] >= 30.0, "Retry-After wins over a shorter back-off"


def test_rejected_records_are_dead_lettered_and_the_batch_completes(tmp_path: Path) -> None:
    """A 4xx rejection goes to the dead-letter store with its reason; the others are delivered."""
    time = FakeTime()
    batch = records(3)

    def reject_first(record: Record) -> Delivery:
        if record.id == batch[0].id:
            return Delivery(Result.REJECTED, "400 mapper_parsing_exception: failed to parse field [source.ip]")
        return Delivery(Result.DELIVERED)

    metrics = CountingMetrics()
    worker = worker_for(tmp_path, ScriptedSink("es", [reject_first]), time, metrics)
    worker.spool.append(batch)
    assert worker.run_once()
    assert not worker.run_once(), "nothing left"
    letters = worker.spool.dead_letters()
    assert [(letter.record.id, letter.reason) for letter in letters] == [
        (batch[0].id, "400 mapper_parsing_exception: failed to parse field [source.ip]"),
    ]
    assert metrics.events == {"sent": 2, "rejected": 1}
    assert time.sleeps == []


def test_a_sink_that_raises_costs_a_retry_not_the_thread(tmp_path: Path) -> None:
    """An exception from deliver() is a retry for the whole batch."""
    time = FakeTime()

    def boom(_record: Record) -> Delivery:
        raise RuntimeError("bug")

    sink = ScriptedSink("es", [boom, ok])
    worker = worker_for(tmp_path, sink, time)
    worker.spool.append(records(2))
    assert worker.run_once()
    assert len(sink.calls) == 2 and worker.spool.read("es", 10) == []


def test_stop_interrupts_the_backoff_and_the_batch_is_sent_again_later(tmp_path: Path) -> None:
    """A real thread in a real (interruptible) back-off stops at once; its cursor has not moved."""
    sink = ScriptedSink("es", [down])
    spool = Spool.open(tmp_path / "spool.db", ["es"])
    spool.append(records(2))
    worker = Worker(sink, spool, backoff=Backoff(3600.0, 3600.0), rng=random.Random(1))  # noqa: S311 (jitter, seeded)
    worker.start()
    for _ in range(200):
        if sink.calls:
            break
        threading.Event().wait(0.01)
    worker.stop()
    worker.join(timeout=5)
    assert worker._thread is not None and not worker._thread.is_alive()
    assert sink.closed
    assert len(spool.read("es", 10)) == 2, "not delivered: still waiting for the next start"
