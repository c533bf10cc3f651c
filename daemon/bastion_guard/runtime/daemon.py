"""The daemon: sources feed one processing loop that decides, enforces, and saves, in that order.

Threads and who owns what:

- one thread per source (a file follower or the journal) reads new lines and puts batches on a bounded
  queue; it never parses and never saves anything;
- the processing loop (the main thread) owns parsers, the engine, the state store and the firewall.
  Control requests from ``bastionctl`` arrive on the same queue, so all state changes happen on one
  thread and nothing needs a lock.

Exactly-once intake: for each batch the loop parses, decides, enforces in the kernel, and only then
commits the source's new position together with the bans in one SQLite transaction. A crash before the
commit replays the batch after restart: decisions are deterministic on event time and bans idempotent,
so nothing is lost and nothing counts twice in the store.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from bastion_guard.actions import make_firewall
from bastion_guard.actions.base import ActionError, BanElement, Firewall
from bastion_guard.decisions import Decision, Verdict
from bastion_guard.durations import parse_duration
from bastion_guard.errors import BastionError, SourceError
from bastion_guard.events import Event, Kind, Outcome
from bastion_guard.keys.alerts import WATCHED_KINDS as KEY_KINDS
from bastion_guard.keys.scheduler import KeyLifecycle, start_key_lifecycle
from bastion_guard.metrics import Metrics
from bastion_guard.parsing import LineParser, LineStatus
from bastion_guard.rules import Engine, RuleSet, load_rules
from bastion_guard.rules.counts import decode as decode_counts
from bastion_guard.rules.counts import encode as encode_counts
from bastion_guard.rules.spec import Network
from bastion_guard.runtime.config import DaemonConfig, SourceConfig
from bastion_guard.runtime.control import ControlServer
from bastion_guard.runtime.host_addresses import host_networks
from bastion_guard.runtime.notify import Notifier
from bastion_guard.runtime.reload import plan_reload, sink_files
from bastion_guard.runtime.restore import restore_active_bans
from bastion_guard.runtime.shipping import Shipping, check_sinks, open_shipping
from bastion_guard.runtime.sources import SourceBatch, SourceReader, open_source
from bastion_guard.shipping.records import Record, RecordKind
from bastion_guard.sources.identity import FileIdentity
from bastion_guard.state.records import BanRecord, KeyUse, Position
from bastion_guard.state.store import StateStore

log = logging.getLogger("bastiond")

_QUEUE_BATCHES = 64  # back-pressure: a source blocks when the loop is this far behind
_IDLE_SECS = 1.0
_PURGE_EVERY_SECS = 3600.0
_HISTORY_KEEP_SECS = 90 * 86400.0
_MANUAL_RULE = "manual"
_LOGGED_BANS_PER_BATCH = 20
_GAUGES_EVERY_SECS = 5.0  # gauges read from the store and the files; scrapes come every 15 s or so


@dataclass
class _ControlCall:
    request: dict[str, Any]
    reply: queue.Queue[dict[str, Any]] = field(default_factory=lambda: queue.Queue(maxsize=1))


@dataclass
class _SourceState:
    config: SourceConfig
    name: str
    parser: LineParser
    lines: int = 0
    events: int = 0
    unmatched: int = 0
    skipped_long: int = 0
    position: Position | None = None
    error: str | None = None


class Daemon:
    """bastiond's processing loop. Build with :meth:`start`, run with :meth:`run`, end with :meth:`stop`."""

    def __init__(
        self, config: DaemonConfig, ruleset: RuleSet, store: StateStore, firewall: Firewall,
        metrics: Metrics | None = None, *, own_networks: tuple[Network, ...] = (),
        load_config: Callable[[], DaemonConfig] | None = None,
    ) -> None:
        self.config = config
        self._load_config = load_config  # what a reload reads again; None: the rules only
        self._own_networks = own_networks
        self._ruleset = ruleset
        self._store = store
        self._firewall = firewall
        self._history = store.history()
        # Never banned: the configured allowlist and the host's own addresses (loopback is the engine's own).
        self._engine = Engine(ruleset, extra_allowed=(*config.allowlist, *own_networks), history=self._history)
        self._inbox: queue.Queue[SourceBatch | _ControlCall | None] = queue.Queue(maxsize=_QUEUE_BATCHES)
        self._stopping = threading.Event()
        self._readers: list[SourceReader] = []
        self._sources: dict[str, _SourceState] = {}
        self._notifier = Notifier()
        self._control: ControlServer | None = None
        self._started = time.time()
        self._last_ping = 0.0
        self._last_purge = time.time()
        self._pending_positions: dict[str, Position] = {}
        self._pending_bans: dict[str, BanRecord] = {}
        self._pending_unbans: set[str] = set()
        self._pending_history: dict[tuple[str, str], tuple[int, float]] = {}
        self._pending_key_uses: dict[str, KeyUse] = {}
        self._keys: KeyLifecycle | None = None
        self.on_decision: Callable[[Decision], None] | None = None
        self._metrics = Metrics(start_time=self._started) if metrics is None else metrics
        self._metrics.set_rules([*_rule_verdicts(ruleset), (_MANUAL_RULE, Verdict.BAN)])
        self._last_gauges = 0.0
        self._shipping: Shipping | None = None  # None: no sinks configured, nothing spooled
        self._shipping_swap: threading.Thread | None = None  # a reload restarting the sink process
        self._reload_requested = threading.Event()  # set by SIGHUP, served by the loop
        self._saved_counts = False  # counts from the last stop are in the store (until a position moves)
        self._sink_files: tuple[tuple[str, tuple[int, ...]], ...] = ()  # what the running sinks read, as of then

    # --- life cycle ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Restore bans into the kernel, open the sources at their saved positions, open the control socket."""
        if self.config.metrics.port:
            try:
                self._metrics.serve(self.config.metrics.address, self.config.metrics.port)
            except BastionError as error:  # observability must never take the protection down
                log.error("%s; running without metrics", error)
        now = time.time()
        restored = restore_active_bans(self._store, self._firewall, now)
        log.info("restored %d active bans into the %s firewall", restored, self.config.firewall)
        self._resume_counts()
        self._sink_files = sink_files(self.config)  # before the sinks read them: a change after is seen
        self._shipping = open_shipping(self.config, self._metrics)
        if self._shipping is not None:
            self._shipping.start()
        saved = self._store.positions()
        for index, source in enumerate(self.config.sources):
            name = source_name(source, index)
            # The saved position until the first batch: the lag gauge is known from the start.
            state = _SourceState(source, name, LineParser(now), position=saved.get(name))
            self._sources[name] = state
            self._metrics.add_source(name)
            reader = open_source(name, source, saved.get(name), self._inbox, self._stopping)
            self._readers.append(reader)
        for reader in self._readers:
            reader.start()
        self._control = ControlServer(self.config.socket_path, self._call_from_control)
        self._control.start()
        # Key steps happen on the lifecycle's own thread; the spool is thread-safe, so they go straight in.
        self._keys = start_key_lifecycle(self.config.keys, self.config.state_dir, self._key_step)
        self._notifier.ready(f"following {', '.join(self._sources)}; {restored} bans restored")
        self._metrics.mark_up()
        log.info("ready: %d sources, %d rules", len(self._sources), len(self._ruleset.rules))

    def _resume_counts(self) -> None:
        """Continue the counts saved at the last clean stop, so a restart is no reset for an attacker."""
        try:
            stored = self._store.saved_counts()
            self._saved_counts = stored is not None
            taken = 0 if stored is None else self._engine.import_counts(decode_counts(stored))
        except (BastionError, ValueError) as error:
            log.warning("counts in progress not resumed (%s); counting starts again at zero", error)
            return
        if taken:
            log.info("resumed the counts in progress of %d keys", taken)

    def run(self) -> None:
        """Process batches and control requests until :meth:`stop`."""
        interval = self._notifier.watchdog_interval
        idle = _IDLE_SECS if interval is None else min(_IDLE_SECS, interval)  # wake in time to ping
        while not self._stopping.is_set():
            try:
                item = self._inbox.get(timeout=idle)
            except queue.Empty:
                item = None
            if isinstance(item, SourceBatch):
                self._process(item)
            elif isinstance(item, _ControlCall):
                item.reply.put(self._answer(item.request))
            if self._reload_requested.is_set():
                self._reload_requested.clear()
                reply = self._answer({"command": "reload"})
                if not reply["ok"]:
                    log.error("SIGHUP: %s", reply["error"])
            self._housekeeping()
        self._commit(with_counts=True)

    def stop(self) -> None:
        """Ask the loop and the sources to finish; positions are flushed by :meth:`run` on its way out."""
        self._notifier.stopping()
        self._metrics.mark_down()
        self._stopping.set()

    def close(self) -> None:
        """Release everything (after :meth:`run` returned)."""
        for reader in self._readers:
            reader.join(timeout=5)
        if self._control is not None:
            self._control.close()
        if self._keys is not None:
            self._keys.stop()
        self._join_shipping_swap()
        if self._shipping is not None:
            self._shipping.stop()
        self._metrics.close()
        self._firewall.stop()
        self._store.close()

    # --- processing ----------------------------------------------------------------------------------

    def _process(self, batch: SourceBatch) -> None:
        started = time.perf_counter()
        state = self._sources[batch.source]
        if batch.error is not None:
            state.error = batch.error
            self._metrics.source_error(batch.source)
            log.error("source %s: %s", batch.source, batch.error)
            return
        state.error = None
        state.skipped_long += batch.skipped_long
        decisions: list[Decision] = []
        events: Counter[tuple[Kind, Outcome]] = Counter()
        statuses: Counter[LineStatus] = Counter()
        feed = self._engine.feed
        shipped: list[Event] | None = None if self._shipping is None else []
        lines = 0
        key_events: list[Event] = []
        for result in batch.parse_with(state.parser):
            lines += 1
            if isinstance(result, Event):
                events[result.kind, result.outcome] += 1
                if shipped is not None:
                    shipped.append(result)
                found = feed(result)
                if found:
                    decisions.extend(found)
                if result.kind in KEY_KINDS:
                    key_events.append(result)
            else:
                statuses[result] += 1
        if key_events:
            self._note_keys(key_events, decisions)
        state.lines += lines
        state.events += events.total()
        state.unmatched += statuses[LineStatus.UNMATCHED]
        state.parser.advance_clock(time.time())
        self._enforce(decisions)
        if self._shipping is not None and shipped is not None:  # spooled before the position is committed
            self._shipping.append_batch(shipped, decisions)
        if batch.position is not None:
            state.position = batch.position
            self._pending_positions[batch.source] = batch.position
        self._commit()
        self._metrics.observe_batch(
            batch.source, lines=lines, events=events, unmatched=statuses[LineStatus.UNMATCHED],
            skipped_long=batch.skipped_long, oversized=statuses[LineStatus.OVERSIZED],
            malformed=statuses[LineStatus.MALFORMED], seconds=time.perf_counter() - started,
        )

    def _enforce(self, decisions: list[Decision]) -> None:
        now = time.time()
        elements = []
        for decision in decisions:
            self._metrics.decision(decision.rule, decision.verdict)
            if self.on_decision is not None:
                self.on_decision(decision)
            if decision.verdict is Verdict.ALERT:
                log.warning("alert %s: %s (%s)", decision.rule, decision.target, decision.reason)
                continue
            record = BanRecord.from_decision(decision)
            self._pending_bans[record.target] = record
            offences = self._history.get((decision.rule, decision.target))
            if offences is not None:  # only what changed is written, not the whole history every batch
                self._pending_history[(decision.rule, decision.target)] = offences
            self._pending_unbans.discard(record.target)
            remaining = record.expires - now
            if remaining > 0:  # a ban decided on old lines (replayed after downtime) may be over already
                elements.append(BanElement(record.target, remaining))
                log.log(
                    logging.DEBUG if len(decisions) > _LOGGED_BANS_PER_BATCH else logging.INFO,
                    "ban %s for %.0fs by %s: %s", record.target, remaining, decision.rule, decision.reason,
                )
        if len(elements) > _LOGGED_BANS_PER_BATCH:
            # A botnet spray must not become a flood of log lines: one summary, details at debug level.
            log.info("banned %d addresses in one batch (first %s, last %s)", len(elements),
                     elements[0].target, elements[-1].target)
        if elements:
            try:
                self._firewall.ban(elements)
            except ActionError as error:
                self._metrics.firewall_error()
                log.error("firewall: %s", error)
            else:
                self._metrics.ban_action("ban", len(elements))

    def _key_step(self, record: Record) -> None:
        """A key lifecycle step (on the lifecycle's thread): count it, and spool it when sinks are configured
        (the spool and the metrics are thread-safe)."""
        self._metrics.key_step(str(record.body.get("action", "other")), str(record.body.get("outcome", "info")))
        if self._shipping is not None:
            self._shipping.append_one(record)

    def _note_keys(self, key_events: list[Event], decisions: list[Decision]) -> None:
        """Last use per key fingerprint (saved with the position) and departed-user alerts."""
        for event in key_events:
            if event.kind is Kind.AUTH_SUCCESS and event.fingerprint is not None:
                self._pending_key_uses[event.fingerprint] = KeyUse(event.fingerprint, event.epoch, event.user, event.ip)
        if self._keys is not None:
            decisions.extend(self._keys.observe(key_events))

    def _commit(self, *, with_counts: bool = False) -> None:
        """Save positions with the bans they caused, atomically; on failure keep them and retry later.
        ``with_counts`` (the last commit of a clean stop) saves the counts in progress with those positions."""
        pending = self._pending_positions or self._pending_bans or self._pending_unbans or self._pending_key_uses
        if not (pending or with_counts):
            return
        # Counts saved at the last stop stay valid until a position moves past them: forget them then.
        forget = self._saved_counts and bool(self._pending_positions)
        counts = encode_counts(self._engine.export_counts(portable_only=True)) if with_counts else None
        try:
            self._save(counts, forget)
        except BastionError as error:
            if counts is None:
                self._metrics.commit_error()
                log.error("state not saved (will retry; the firewall keeps protecting): %s", error)
                return
            # The last commit: the positions and bans matter more than the counts (a full disk, say).
            log.warning("counts in progress not saved (%s); saving the rest without them", error)
            self._commit()
            return
        self._saved_counts = self._saved_counts and not forget
        self._pending_positions.clear()
        self._pending_bans.clear()
        self._pending_unbans.clear()
        self._pending_history.clear()
        self._pending_key_uses.clear()

    def _save(self, counts: bytes | None, forget_counts: bool) -> None:
        self._store.commit(
            list(self._pending_positions.values()), list(self._pending_bans.values()),
            sorted(self._pending_unbans), self._pending_history, list(self._pending_key_uses.values()),
            counts=counts, forget_counts=forget_counts,
        )

    def _housekeeping(self) -> None:
        now = time.time()
        if self._notifier.watchdog_interval is not None and now - self._last_ping >= self._notifier.watchdog_interval:
            self._notifier.ping()
            self._last_ping = now
        if now - self._last_gauges >= _GAUGES_EVERY_SECS:
            self._last_gauges = now
            self._refresh_gauges(now)
        if now - self._last_purge >= _PURGE_EVERY_SECS:
            self._last_purge = now
            try:
                self._store.purge(now, _HISTORY_KEEP_SECS)
            except BastionError as error:
                log.error("state not purged (will retry): %s", error)

    def _refresh_gauges(self, now: float) -> None:
        """Gauges cheaper to read every few seconds than to keep exact on every change."""
        metrics = self._metrics
        metrics.set_tracked_keys(self._engine.tracked_keys)
        try:
            metrics.set_active_bans(self._store.count_active(now) + len(self._pending_bans))
        except BastionError as error:  # the commit path reports store trouble; keep the last value
            log.debug("active bans not counted: %s", error)
        for state in self._sources.values():
            metrics.set_position_lag(state.name, position_lag(state.config, state.position))
        if self._shipping is not None:
            self._shipping.refresh_gauges()

    # --- control ------------------------------------------------------------------------------------

    def _call_from_control(self, request: dict[str, Any]) -> dict[str, Any]:
        """Runs on a control thread: hand the request to the loop and wait for its answer."""
        call = _ControlCall(request)
        self._inbox.put(call)
        try:
            return call.reply.get(timeout=20)
        except queue.Empty:
            return {"ok": False, "error": "the daemon is busy; try again"}

    def _answer(self, request: dict[str, Any]) -> dict[str, Any]:
        handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "status": self._status,
            "bans": self._bans,
            "ban": self._manual_ban,
            "unban": self._unban,
            "explain": self._explain,
            "reload": self._reload,
        }
        handler = handlers.get(request["command"])
        if handler is None:
            return {"ok": False, "error": f"unknown command {request['command']!r} (known: {', '.join(handlers)})"}
        try:
            return handler(request)
        except (BastionError, ValueError) as error:
            return {"ok": False, "error": str(error)}
        except Exception as error:  # a bug in one command must not take the protection down with it
            log.exception("control command %s failed", request["command"])
            return {"ok": False, "error": f"internal error: {error}"}

    def _status(self, _request: dict[str, Any]) -> dict[str, Any]:
        now = time.time()
        return {
            "ok": True,
            "uptime_secs": round(now - self._started, 1),
            "config": self.config.origin,
            "rules_dir": str(self.config.rules_dir),
            "rules": [rule.name for rule in self._ruleset.rules],
            "firewall": self.config.firewall,
            "state": str(self.config.state_path),
            "active_bans": self._store.count_active(now) + len(self._pending_bans),
            "tracked_keys": self._engine.tracked_keys,
            "unsaved": bool(self._pending_positions or self._pending_bans or self._pending_unbans),
            "shipping": None if self._shipping is None else self._shipping.status(),
            "sources": [
                {
                    "name": state.name, "type": state.config.type,
                    "path": str(state.config.path) if state.config.path else None,
                    "lines": state.lines, "events": state.events, "unmatched": state.unmatched,
                    "skipped_long": state.skipped_long, "error": state.error,
                    "position": None if state.position is None else describe_position(state.position),
                }
                for state in self._sources.values()
            ],
        }

    def _active(self, now: float) -> Iterator[BanRecord]:
        merged = {ban.target: ban for ban in self._store.active_bans(now)}
        merged.update({target: ban for target, ban in self._pending_bans.items() if ban.expires > now})
        for target in self._pending_unbans:
            merged.pop(target, None)
        return iter(sorted(merged.values(), key=lambda ban: ban.expires))

    def _bans(self, _request: dict[str, Any]) -> dict[str, Any]:
        now = time.time()
        return {"ok": True, "bans": [ban_json(ban, now) for ban in self._active(now)]}

    def _manual_ban(self, request: dict[str, Any]) -> dict[str, Any]:
        target = str(request.get("target", ""))
        duration = parse_duration(request.get("duration", "1h"))
        reason = str(request.get("reason") or "manual ban")
        now = time.time()
        decision = Decision(Verdict.BAN, _MANUAL_RULE, target, now, duration, 0, 1, reason, (), origin="bastionctl")
        record = BanRecord.from_decision(decision)  # validates the target
        if self._engine.allowlisted(record.target):
            # The kernel accepts allowlisted sources before it looks at any ban set, so such a ban would be
            # listed as active while doing nothing: refuse it and say why.
            raise ValueError(f"{record.target} is never banned (an allowlist, loopback or this host's addresses): "
                             "a ban would have no effect; remove it from the allowlist first")
        self._firewall.ban([BanElement(record.target, duration)])
        self._metrics.decision(_MANUAL_RULE, Verdict.BAN)
        self._metrics.ban_action("ban", 1)
        self._pending_bans[record.target] = record
        self._pending_unbans.discard(record.target)
        if self._shipping is not None:
            self._shipping.append_action(RecordKind.BAN, now, target=record.target, rule=_MANUAL_RULE,
                                         duration_secs=duration, reason=reason, origin="bastionctl")
        self._commit()
        return {"ok": True, "ban": ban_json(record, now)}

    def _unban(self, request: dict[str, Any]) -> dict[str, Any]:
        now = time.time()
        everything = bool(request.get("all"))
        targets = [ban.target for ban in self._active(now)] if everything else [str(request.get("target", ""))]
        present = {ban.target for ban in self._active(now)}
        self._firewall.unban(targets)
        self._metrics.ban_action("unban", len(targets))
        for target in targets:
            self._pending_bans.pop(target, None)
            self._pending_unbans.add(target)
            self._engine.forget_ban(target)
            if self._shipping is not None and target in present:
                self._shipping.append_action(RecordKind.UNBAN, now, target=target, origin="bastionctl")
        self._commit()
        return {
            "ok": True,
            "unbanned": [target for target in targets if target in present],
            "absent": [target for target in targets if target not in present],
        }

    def _explain(self, request: dict[str, Any]) -> dict[str, Any]:
        target = str(request.get("target", ""))
        now = time.time()
        ban = next((ban for ban in self._active(now) if ban.target == target), None)
        if ban is None:
            ban = self._store.ban(target)
        return {"ok": True, "target": target, "ban": None if ban is None else ban_json(ban, now),
                "history": [
                    {"rule": rule, "offences": offences, "last": last}
                    for (rule, key), (offences, last) in sorted(self._history.items()) if key == target
                ]}

    def _reload(self, _request: dict[str, Any]) -> dict[str, Any]:
        """Check everything first: a bad file never replaces a good running configuration.

        The sink process is restarted when the sinks or the spool settings changed, or a file a sink reads (a
        secret, a CA) changed on disk: a rotated API key is picked up by a reload."""
        try:
            loaded = self.config if self._load_config is None else self._load_config()
            ruleset = load_rules(loaded.rules_dir)
            plan = plan_reload(self.config, loaded)
            check_sinks(plan.config)  # each sink built once: a missing secret file fails here
            self._firewall.set_allowlist(firewall_allowlist(ruleset, plan.config))
        except BastionError as error:
            return {"ok": False, "error": f"not reloaded, the running configuration stays:\n{error}"}
        files = sink_files(plan.config)
        shipping_changed = (plan.config.sinks, plan.config.spool, files) != (
            self.config.sinks, self.config.spool, self._sink_files)
        self.config = plan.config
        self._ruleset = ruleset
        self._own_networks = host_networks(plan.config.netns)  # an address may have come or gone since
        counts = self._engine.export_counts()
        self._engine = Engine(ruleset, extra_allowed=(*plan.config.allowlist, *self._own_networks),
                              history=self._history)
        self._engine.import_counts(counts)  # rules that still count the same way go on where they were
        self._metrics.set_rules([*_rule_verdicts(ruleset), (_MANUAL_RULE, Verdict.BAN)])
        if shipping_changed:
            self._sink_files = files
            self._swap_shipping()
        log.info("reloaded %s and %d rules from %s", plan.config.origin, len(ruleset.rules), plan.config.rules_dir)
        for name in plan.restart_needed:
            log.warning("%s changed in %s: it takes effect at the next restart", name, plan.config.origin)
        return {"ok": True, "rules": [rule.name for rule in ruleset.rules],
                "sinks": [sink.name for sink in plan.config.sinks], "restart_needed": list(plan.restart_needed)}

    def _swap_shipping(self) -> None:
        """Spool for the configured sinks from now on (the same spool: what waits in it stays); stop the old sink
        process and start the new one on a thread of their own, since a sink stuck mid-delivery can take seconds
        to stop and the loop must not wait (its watchdog would not either). The new workers start only after
        the old ones ended, so no two deliver the same records; what is appended meanwhile waits."""
        previous = self._shipping
        try:
            replacement = open_shipping(self.config, self._metrics, None if previous is None else previous.spool)
        except BastionError as error:  # the sinks were checked: this is the spool itself failing
            log.error("the sinks were not changed by the reload: %s", error)
            return
        self._shipping = replacement
        if previous is None and replacement is None:
            return
        removed = set() if previous is None else set(previous.sink_names) - {sink.name for sink in self.config.sinks}
        earlier = self._shipping_swap  # a swap of an earlier reload, maybe still stopping a stuck sink

        def swap() -> None:
            if earlier is not None:
                earlier.join()  # it starts ``previous``, which this one stops: in that order, off the loop
            if previous is not None:
                previous.stop(keep_spool=replacement is not None)
                for name in removed:  # after the stop: the old process reports into these series until then
                    self._metrics.remove_output(name)
            if replacement is not None:
                replacement.start()

        self._shipping_swap = threading.Thread(target=swap, name="sink process restart", daemon=True)
        self._shipping_swap.start()

    def _join_shipping_swap(self) -> None:
        """Wait for the restarts of the sink process still under way (closing needs them done)."""
        if self._shipping_swap is not None:
            self._shipping_swap.join()
            self._shipping_swap = None

    def reload(self) -> None:
        """SIGHUP: ask the loop to reload at its next turn, like ``bastionctl reload``. This never blocks: the
        handler runs on the loop's own thread, which a put into a full inbox would wait on forever."""
        self._reload_requested.set()


def source_name(source: SourceConfig, index: int) -> str:
    """A stable name for a source, used as the key of its saved position."""
    if source.type == "file" and source.path is not None:
        return f"file:{source.path}"
    return "journal" if index == 0 else f"journal#{index}"


def position_lag(source: SourceConfig, position: Position | None) -> int | None:
    """Bytes of the followed file after ``position``; None for the journal, before any position, or while the
    position is in a rotated predecessor (the followed path is another file)."""
    if source.path is None or position is None or position.identity is None:
        return None
    identity = FileIdentity.parse(position.identity)
    try:
        status = source.path.stat()
    except OSError:
        return None
    if identity is None or not identity.same_inode(status):
        return None
    return status.st_size - position.offset


def _rule_verdicts(ruleset: RuleSet) -> list[tuple[str, str]]:
    return [(rule.name, rule.action.value) for rule in ruleset.rules]


def ban_json(ban: BanRecord, now: float) -> dict[str, Any]:
    """A ban as ``bastionctl`` shows it."""
    return {
        "target": ban.target, "rule": ban.rule, "created": ban.created, "expires": ban.expires,
        "remaining_secs": max(0.0, round(ban.expires - now, 1)), "offence": ban.offence, "reason": ban.reason,
        "origin": ban.origin,
        "evidence": [
            {"time": epoch, "source": source, "position": position} for epoch, source, position in ban.evidence
        ],
    }


def describe_position(position: Position) -> str:
    """``offset 1234 of <identity>`` or ``cursor s=...``."""
    if position.cursor is not None:
        return f"cursor {position.cursor}"
    return f"offset {position.offset} of {position.identity}"


def firewall_allowlist(ruleset: RuleSet, config: DaemonConfig) -> list[str]:
    """The networks the kernel's allow sets accept before any ban: the rules' allowlists and the config's."""
    return [str(network) for network in (*ruleset.allowlisted_networks(), *config.allowlist)]


def build_daemon(config: DaemonConfig, load_config: Callable[[], DaemonConfig] | None = None) -> Daemon:
    """Load rules, open state and firewall as ``config`` says; raise a :class:`BastionError` with a clear message."""
    ruleset = load_rules(config.rules_dir)
    store = StateStore.open(config.state_path)
    if store.recovery is not None:
        log.error("state database was damaged: %s", store.recovery.describe())
    firewall = make_firewall(config.firewall, netns=config.netns)
    try:
        firewall.start(allow=firewall_allowlist(ruleset, config))
    except ActionError:
        store.close()
        raise
    own = host_networks(config.netns)
    log.info("never banning this host's own %d addresses: %s", len(own), ", ".join(map(str, own)) or "none found")
    return Daemon(config, ruleset, store, firewall, own_networks=own, load_config=load_config)


__all__ = ["Daemon", "SourceError", "build_daemon", "source_name"]
