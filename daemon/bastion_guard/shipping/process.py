"""The sink workers in a process of their own, so their CPU is not taken from the detection loop.

In one interpreter a worker's Python time comes out of the loop's (the GIL): with one worker delivering,
the loop ran at 0.44-0.66x its rate without sinks, against 0.77-0.80x for spooling alone (bench_shipping).
The spool is a file shared through SQLite's WAL, so the workers can run anywhere: the daemon spawns one
child (``spawn``: nothing of the daemon's state, locks or threads is inherited) that builds the sinks from
their configuration, opens the spool and runs one :class:`~bastion_guard.shipping.worker.Worker` per sink.

What crosses the process boundary, over one pipe child -> parent: every metrics call the workers make and
each worker's status (``bastionctl status``) when it changed, looked at ten times a second; an up/down
change also comes with the metrics call that reports it, ahead of the cursor move that follows it.
Parent -> child: a wake-up event (records were appended) and a stop event. The child ends when asked, and
also when the daemon is gone (the pipe breaks, or it is re-parented after a ``kill -9``), so a restarted
daemon never has two sets of workers delivering (that would only duplicate, never lose, but it would
double the load on the cluster).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as ProcessEvent
from pathlib import Path
from typing import Any

from bastion_guard.shipping.base import Health
from bastion_guard.shipping.spool import Bounds, Spool
from bastion_guard.shipping.worker import Backoff, DeliveryMetrics, Worker, WorkerStatus

log = logging.getLogger("bastiond.shipping")

_WAKE_POLL_SECS = 0.1  # also how often the statuses are looked at
_STOP_SECS = 15.0


@dataclass(frozen=True)
class SinkPlan:
    """How the child builds one sink: its registered ``type``, its ``name`` and its parsed ``options``."""

    type: str
    name: str
    options: Any


@dataclass(frozen=True)
class ProcessPlan:
    """Everything the child needs (it is pickled to it)."""

    spool_path: Path
    bounds: Bounds
    sinks: tuple[SinkPlan, ...]
    backoff: Backoff
    log_level: int


class _Forwarder:
    """The child's :class:`DeliveryMetrics`: each call becomes a message to the parent."""

    def __init__(self, conn: Connection, stop: threading.Event) -> None:
        self._conn = conn
        self._lock = threading.Lock()  # several worker threads share the pipe
        self._stop = stop

    def send(self, message: tuple[Any, ...]) -> None:
        """Send ``message``; a broken pipe means the daemon is gone: stop."""
        try:
            with self._lock:
                self._conn.send(message)
        except (BrokenPipeError, EOFError, OSError):
            self._stop.set()

    def output_events(self, output: str, result: str, count: int) -> None:
        """Forwarded."""
        self.send(("events", output, result, count))

    def observe_send(self, output: str, seconds: float) -> None:
        """Forwarded."""
        self.send(("send", output, seconds))

    def set_output_up(self, output: str, up: bool) -> None:
        """Forwarded."""
        self.send(("up", output, up))


def child_main(plan: ProcessPlan, conn: Connection, wake: ProcessEvent, stop: ProcessEvent) -> None:
    """The child's body: build the sinks, deliver until stopped or orphaned."""
    from bastion_guard.shipping.factory import SINK_TYPES  # noqa: PLC0415 (imported in the child only)

    # systemd's SIGTERM and a terminal's Ctrl-C reach the whole group: the daemon decides when the child
    # stops (after its loop has flushed), so the child waits for the stop event or the daemon's end.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=plan.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parent = os.getppid()
    ended = threading.Event()
    forwarder = _Forwarder(conn, ended)
    sinks = [SINK_TYPES[sink.type][1](sink.options, sink.name) for sink in plan.sinks]
    spool = Spool.open(plan.spool_path, [sink.name for sink in sinks], plan.bounds)
    workers = [Worker(sink, spool, metrics=forwarder, backoff=plan.backoff) for sink in sinks]
    for worker in workers:
        worker.start()
    sent: dict[str, tuple[Any, ...]] = {}
    while not ended.is_set() and not stop.is_set() and os.getppid() == parent:
        if wake.wait(_WAKE_POLL_SECS):
            wake.clear()
            for worker in workers:
                worker.notify()
        for worker in workers:
            status = worker.status
            report = ("status", worker.sink.name, status.health.ok, status.health.detail, status.delivered,
                      status.failing_since, status.last_error)
            if sent.get(worker.sink.name) != report:
                sent[worker.sink.name] = report
                forwarder.send(report)
    for worker in workers:
        worker.stop()
    for worker in workers:
        worker.join(timeout=10)
    spool.close()
    conn.close()


class WorkerProcess:
    """The daemon's handle on the child: start, wake, statuses, stop."""

    def __init__(self, plan: ProcessPlan, metrics: DeliveryMetrics) -> None:
        self.plan = plan
        self.statuses = {sink.name: WorkerStatus(Health(False, "not checked yet")) for sink in plan.sinks}
        self._metrics = metrics
        context = multiprocessing.get_context("spawn")
        self._wake = context.Event()
        self._stop = context.Event()
        receiving, sending = context.Pipe(duplex=False)
        self._receiving = receiving
        self._process = context.Process(target=child_main, args=(plan, sending, self._wake, self._stop),
                                        name="bastiond-sinks", daemon=True)
        self._sending = sending
        self._reader = threading.Thread(target=self._read, name="sinks-reports", daemon=True)

    def start(self) -> None:
        """Spawn the child and start reading its reports."""
        self._process.start()
        self._sending.close()  # the child holds the writing end now: EOF here when it is gone
        self._reader.start()

    def notify(self) -> None:
        """Records were appended: wake the workers."""
        self._wake.set()

    def stop(self) -> None:
        """Ask the child to finish its batches' bookkeeping and end; end it if it does not."""
        self._stop.set()
        self._process.join(_STOP_SECS)
        if self._process.is_alive():
            log.error("sink process did not stop in %.0fs; terminating it (a batch in flight is sent again)",
                      _STOP_SECS)
            self._process.terminate()
            self._process.join(5)
        self._reader.join(timeout=5)
        self._receiving.close()

    @property
    def alive(self) -> bool:
        """Whether the child runs."""
        return self._process.is_alive()

    def _read(self) -> None:
        """Apply the child's reports until it closes the pipe."""
        while True:
            try:
                message = self._receiving.recv()
            except (EOFError, OSError):
                break
            self._apply(message)
        if not self._stop.is_set():
            log.error("sink process ended (exit code %s); records wait in the spool until bastiond restarts",
                      self._process.exitcode)
            for name, status in self.statuses.items():
                status.health = Health(False, "sink process ended")
                self._metrics.set_output_up(name, False)

    def _apply(self, message: Sequence[Any]) -> None:
        kind = message[0]
        if kind == "events":
            self._metrics.output_events(message[1], message[2], message[3])
        elif kind == "send":
            self._metrics.observe_send(message[1], message[2])
        elif kind == "up":
            _, name, up = message
            self._metrics.set_output_up(name, up)
            status = self.statuses.get(name)
            if status is not None and status.health.ok is not up:  # the details follow with the next status
                status.health = Health(up, "delivering" if up else status.last_error or "failing")
        elif kind == "status":
            _, name, ok, detail, delivered, failing_since, last_error = message
            status = self.statuses.get(name)
            if status is not None:
                status.health = Health(ok, detail)
                status.delivered, status.failing_since, status.last_error = delivered, failing_since, last_error


__all__ = ["ProcessPlan", "SinkPlan", "WorkerProcess", "child_main"]
