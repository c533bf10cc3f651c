"""The daemon's side of shipping: events and records into the spool on the loop; the sinks' workers run in a
process of their own (:mod:`bastion_guard.shipping.process`), one thread per sink there.

The processing loop calls :meth:`Shipping.append_batch` with a batch's events and decisions **before** it
commits the source position: a crash in between replays the batch, and the spool recognises the lines and
decisions already waiting (see :mod:`bastion_guard.shipping.spool`), so nothing is lost and nothing is
shipped twice. With no sinks configured there is no :class:`Shipping` at all (:func:`open_shipping` returns
None): no spool file, no sink process, no cost per batch.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Sequence
from typing import Any

from bastion_guard.decisions import Decision
from bastion_guard.events import Event
from bastion_guard.metrics import Metrics
from bastion_guard.runtime.config import DaemonConfig
from bastion_guard.shipping.base import Sink
from bastion_guard.shipping.factory import SINK_TYPES
from bastion_guard.shipping.process import ProcessPlan, SinkPlan, WorkerProcess
from bastion_guard.shipping.records import Record, RecordKind, action_record, decision_record
from bastion_guard.shipping.spool import Spool, SpoolError
from bastion_guard.shipping.worker import Backoff

log = logging.getLogger("bastiond.shipping")


class Shipping:
    """The spool and the sink process, owned by the daemon."""

    def __init__(self, spool: Spool, workers: WorkerProcess, metrics: Metrics, bastion: str | None = None) -> None:
        self.spool = spool
        self.bastion = bastion or socket.gethostname()
        self.workers = workers
        self.sink_names = [sink.name for sink in workers.plan.sinks]
        self._metrics = metrics
        for name in self.sink_names:
            metrics.add_output(name)
        spool.on_drop = self._dropped
        self._drop_logged: set[str] = set()

    def start(self) -> None:
        """Start the sink process (each worker checks its far end first)."""
        self.workers.start()

    def stop(self, *, keep_spool: bool = False) -> None:
        """Stop the workers (a batch in flight is sent again after the next start), then close the spool unless
        ``keep_spool`` (a reload hands it to the next Shipping)."""
        self.workers.stop()
        if not keep_spool:
            self.spool.close()

    def append_batch(self, events: Sequence[Event], decisions: Sequence[Decision]) -> None:
        """Spool one batch's events and decisions (call before committing its position)."""
        bastion = self.bastion
        records = [decision_record(decision, bastion) for decision in decisions]
        # The events go in as they are (their records are built by the workers), with the decisions, in one
        # transaction.
        self._append(lambda: self.spool.append_batch(events, bastion, records), len(events) + len(records))

    def append_action(self, kind: RecordKind, epoch: float, **fields: Any) -> None:
        """Spool a manual ban, an unban, a key or an audit step."""
        self.append([action_record(kind, epoch, self.bastion, **fields)])

    def append_one(self, record: Record) -> None:
        """Spool one record built elsewhere (key lifecycle steps, from their own thread)."""
        self.append([record])

    def append(self, records: Sequence[Record]) -> None:
        """Spool ``records`` and wake the workers. A spool that cannot be written (a full disk) costs the
        shipped copies, never the protection: the error is logged and counted as drops, and the loop goes on
        to commit the position and the bans."""
        if records:
            self._append(lambda: self.spool.append(records), len(records))

    def _append(self, append: Callable[[], int], count: int) -> None:
        if not count:
            return
        try:
            append()
        except SpoolError as error:
            log.error("%s; %d records not shipped", error, count)
            for name in self.sink_names:
                self._metrics.output_events(name, "dropped", count)
            return
        self.workers.notify()

    def refresh_gauges(self) -> None:
        """Spool depth and oldest age per sink, for the metrics."""
        try:
            backlog = self.spool.backlog()
        except SpoolError as error:
            log.debug("spool backlog not read: %s", error)
            return
        for entry in backlog:
            self._metrics.set_output_queue(entry.sink, entry.depth, entry.oldest_age_secs)

    def status(self) -> dict[str, Any]:
        """What ``bastionctl status`` shows: the spool's size and, per sink, backlog and health."""
        try:
            backlog = {entry.sink: entry for entry in self.spool.backlog()}
            records, size = self.spool.size()
            dead = len(self.spool.dead_letters())
        except SpoolError as error:
            return {"spool": str(self.spool.path), "error": str(error), "sinks": []}
        sinks = []
        for name, status in self.workers.statuses.items():
            entry = backlog.get(name)
            sinks.append({
                "name": name, "healthy": status.health.ok, "health": status.health.detail,
                "depth": entry.depth if entry else 0,
                "oldest_age_secs": None if entry is None or entry.oldest_age_secs is None
                else round(entry.oldest_age_secs, 1),
                "delivered": status.delivered, "failing_since": status.failing_since,
            })
        return {"spool": str(self.spool.path), "records": records, "bytes": size, "dead_letters": dead,
                "sinks": sinks}

    def _dropped(self, sink: str, count: int) -> None:
        self._metrics.output_events(sink, "dropped", count)
        if sink not in self._drop_logged:  # once per sink and run: a full spool stays full for a while
            self._drop_logged.add(sink)
            log.error("spool full (%s): dropping records for sink %s by policy %s; see "
                      "bastion_output_events_total{result=\"dropped\"}", self.spool.path, sink,
                      self.spool.bounds.policy)


def check_sinks(config: DaemonConfig) -> None:
    """Build each configured sink once and close it, so a problem (a secret file missing) is reported here, as
    a clear error, rather than in the sink process; that process builds its own."""
    sinks: list[Sink] = []
    try:
        for entry in config.sinks:
            _parse, build = SINK_TYPES[entry.type]
            sinks.append(build(entry.options, entry.name))
    finally:
        for sink in sinks:
            sink.close()


def open_shipping(config: DaemonConfig, metrics: Metrics, spool: Spool | None = None) -> Shipping | None:
    """Build the sinks and open the spool as ``config`` says; None when no sink is configured.

    A reload passes the running ``spool``, which is kept (its sinks and bounds set anew) rather than opened a
    second time: a second connection opened beside a running sink process, whose first connection is then
    closed, stopped seeing that process's commits (measured: its backlog stayed full while the records were
    delivered), and there is nothing to gain from it."""
    if not config.sinks:
        return None
    check_sinks(config)
    names = [entry.name for entry in config.sinks]
    if spool is None:
        spool = Spool.open(config.spool_path, names, config.spool.bounds)
    else:
        spool.set_sinks(names)
        spool.bounds = config.spool.bounds
    plan = ProcessPlan(
        spool_path=config.spool_path, bounds=config.spool.bounds,
        sinks=tuple(SinkPlan(entry.type, entry.name, entry.options) for entry in config.sinks),
        backoff=Backoff(config.spool.backoff_initial_secs, config.spool.backoff_max_secs),
        log_level=logging.getLogger().getEffectiveLevel(),
    )
    return Shipping(spool, WorkerProcess(plan, metrics), metrics)
