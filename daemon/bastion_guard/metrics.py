"""Every Prometheus metric bastiond exposes, on its own registry, served on 127.0.0.1 by default.

One :class:`Metrics` object per daemon holds a private :class:`~prometheus_client.CollectorRegistry` (never
client_python's global ``REGISTRY``: tests build as many as they like, and nothing registers behind our
back). The daemon calls a handful of methods, about once per batch; nothing here is called per line.

Naming follows ``docs/conventions.md`` section 3: the ``bastion_`` prefix, base units (seconds, bytes),
counters ending in ``_total``. **Labels come only from bounded sets**: configured source and rule names,
the :class:`~bastion_guard.events.Kind` / :class:`~bastion_guard.events.Outcome` enums and the fixed tuples
below. No label ever holds an address or a user name: both are chosen by the attacker on a bastion, and
per-address detail belongs in logs and shipped events. Known label sets are created at 0 up front, so
``rate()`` and ``increase()`` work from the first scrape and alerts can tell "none" from "not exported".

====================================== ========= =========================================================
metric                                 type      labels
====================================== ========= =========================================================
bastion_build_info                     gauge=1   version, python_version
bastion_up                             gauge     (1 while the processing loop runs, else 0)
bastion_start_time_seconds             gauge     (Unix time the daemon started)
bastion_log_lines_total                counter   source
bastion_auth_events_total              counter   kind, outcome
bastion_unparsed_lines_total           counter   source
bastion_skipped_lines_total            counter   source, reason (long, oversized, malformed)
bastion_source_errors_total            counter   source
bastion_source_position_lag_bytes      gauge     source (file sources, when the read file is the followed one)
bastion_decisions_total                counter   rule, verdict (ban, alert)
bastion_ban_actions_total              counter   action (ban, unban)
bastion_banned_addresses               gauge     (active bans)
bastion_tracked_keys                   gauge     (keys the rules are counting)
bastion_firewall_errors_total          counter
bastion_state_commit_errors_total      counter
bastion_processing_seconds             histogram (per batch: parse, decide, enforce, commit)
bastion_output_events_total            counter   output, result (sent, skipped, held, failed, retried,
                                                 rejected, dropped)
bastion_output_queue_events            gauge     output (records in the spool the sink has not finished)
bastion_output_queue_oldest_age_seconds gauge    output (age of the oldest of them; 0 when none)
bastion_output_send_duration_seconds   histogram output (one delivery call: a bulk request, a GELF batch)
bastion_output_up                      gauge     output (1 while the far end answers, else 0)
bastion_key_steps_total                counter   action, outcome (KEY_ACTIONS x KEY_OUTCOMES)
====================================== ========= =========================================================

``output`` is a configured sink name (bounded by the configuration). Results: ``sent`` delivered (an
idempotent duplicate included), ``skipped`` not for this sink, ``failed`` a delivery attempt that must be
retried, ``held`` deferred by the sink's own pacing (webhook rate limits), ``retried`` a record sent again,
``rejected`` dead-lettered, ``dropped`` lost to a full spool.

Webhooks are ``output`` s of the shipping metrics. Key lifecycle steps run by bastiond (departures,
scheduled rotations) count in ``bastion_key_steps_total``: ``shared-key-rotation`` with outcome ``success``
is a completed rotation, ``key-revoked`` a key put in the KRL. New metrics are declared here, in
:meth:`Metrics.__init__`, in the same change as the code that sets them: a metric that is exported but
never set looks like "all quiet" on a dashboard.

Counters are exposed the way client_python does it, including the ``*_created`` series of the classic text
format (Prometheus asks for OpenMetrics, where they are part of the family, not extra series).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from bastion_guard import __version__
from bastion_guard.decisions import Verdict
from bastion_guard.errors import BastionError
from bastion_guard.events import Kind, Outcome

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

DEFAULT_ADDRESS = "127.0.0.1"  # client_python's default is 0.0.0.0; a bastion must not expose this by accident
DEFAULT_PORT = 9474  # in the exporters' 9100-9999 range; the configuration documents it

SKIP_REASONS = ("long", "oversized", "malformed")
"""Why a line was counted and not parsed: ``long``, skipped unread by the file source (over its 64 KiB
line limit); ``oversized``, read but over the parser's limit (or a journal entry too big to take);
``malformed``, no syslog envelope and not a bare sshd message (or not a journal entry)."""

OUTPUT_RESULTS = ("sent", "skipped", "held", "failed", "retried", "rejected", "dropped")
# The steps bastion_guard.keys records (Audit.step); a bounded set, so each is exported at 0 from the start.
KEY_ACTIONS = (
    "key-revoked", "krl-check", "authorized-keys-removed", "account-locked", "sessions-ended", "offboarding",
    "shared-key-generated", "shared-key-install", "shared-key-switch", "shared-key-remove-old",
    "shared-key-rotation",
)
KEY_OUTCOMES = ("success", "failure", "skipped", "info")
"""What happened to shipped records, per output (see the table above)."""

# One delivery call: a bulk request on a LAN takes milliseconds; a timeout is seconds.
SEND_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

BAN_ACTIONS = ("ban", "unban")
"""Changes handed to the firewall, counted per address."""

EVENT_OUTCOMES: Mapping[Kind, Outcome] = MappingProxyType({
    Kind.AUTH_FAILURE: Outcome.FAILURE,
    Kind.INVALID_USER: Outcome.FAILURE,
    Kind.USER_NOT_ALLOWED: Outcome.FAILURE,
    Kind.ROOT_LOGIN_REFUSED: Outcome.FAILURE,
    Kind.MAX_AUTH_EXCEEDED: Outcome.FAILURE,
    Kind.TOO_MANY_AUTH_FAILURES: Outcome.FAILURE,
    Kind.KEY_REVOKED: Outcome.FAILURE,
    Kind.AUTH_SUCCESS: Outcome.SUCCESS,
    Kind.PREAUTH_CLOSE: Outcome.FAILURE,
    Kind.PREAUTH_DISCONNECT: Outcome.FAILURE,
    Kind.PREAUTH_TIMEOUT: Outcome.FAILURE,
    Kind.HANDSHAKE_ERROR: Outcome.FAILURE,
    Kind.NEGOTIATION_FAILURE: Outcome.FAILURE,
    Kind.PENALTY_DROP: Outcome.FAILURE,
    Kind.CONNECTION: Outcome.INFO,
    Kind.DISCONNECT: Outcome.INFO,
    Kind.SESSION_OPENED: Outcome.INFO,
    Kind.SESSION_CLOSED: Outcome.INFO,
    Kind.REVERSE_MAPPING: Outcome.INFO,
    Kind.PAM_AUTH_FAILURE: Outcome.FAILURE,
    Kind.PAM_ERROR: Outcome.FAILURE,
    Kind.PAM_MORE_FAILURES: Outcome.FAILURE,
    Kind.SUDO_COMMAND: Outcome.SUCCESS,
    Kind.SUDO_FAILURE: Outcome.FAILURE,
    Kind.SU_SESSION: Outcome.SUCCESS,
    Kind.SU_FAILURE: Outcome.FAILURE,
})
"""The outcome the parsers give each kind: the ``bastion_auth_events_total`` series created at 0.
A pair outside this table is still counted (its series appears when it first occurs); the unit tests
check the table against what the parsers produce."""

# Per batch: a few lines take well under a millisecond; 10,000 lines, a firewall call and an fsync'ed
# SQLite commit take tens of milliseconds; seconds mean the loop is in trouble.
PROCESSING_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_Child = Counter  # what .labels() returns: the same class, bound to one label set


@dataclass(frozen=True, slots=True)
class _SourceSeries:
    """The pre-bound children of one source, so a batch costs dict lookups, not ``labels()`` calls."""

    lines: _Child
    unparsed: _Child
    long: _Child
    oversized: _Child
    malformed: _Child
    errors: _Child


class Metrics:
    """bastiond's metrics on a private registry; see the module docstring for the list.

    ``sources`` and ``rules`` (``(name, verdict)`` pairs) create their series at 0; more can be added
    later with :meth:`add_source` and :meth:`set_rules` (after a reload). Methods are safe to call from
    any thread (client_python locks each value); the HTTP server reads from its own thread.
    """

    def __init__(
        self,
        *,
        sources: Iterable[str] = (),
        rules: Iterable[tuple[str, str]] = (),
        start_time: float | None = None,
        version: str = __version__,
    ) -> None:
        self.registry = CollectorRegistry()
        self._server: WSGIServer | None = None
        registry = self.registry

        info = Gauge("bastion_build_info", "bastion-guard build: always 1; the labels say which.",
                     ["version", "python_version"], registry=registry)
        info.labels(version=version, python_version=platform.python_version()).set(1)
        self._up = Gauge("bastion_up", "1 while bastiond's processing loop runs (bans restored, sources open), "
                         "else 0.", registry=registry)
        started = Gauge("bastion_start_time_seconds", "When bastiond started, in seconds since the Unix epoch.",
                        registry=registry)
        started.set(time.time() if start_time is None else start_time)

        self._lines = Counter("bastion_log_lines_total", "Log lines (or journal entries) read and parsed, by source.",
                              ["source"], registry=registry)
        self._events = Counter("bastion_auth_events_total", "Events parsed from sshd, PAM, sudo and su lines, "
                               "by kind and outcome (a 'message repeated N times' line counts once).",
                               ["kind", "outcome"], registry=registry)
        self._unparsed = Counter("bastion_unparsed_lines_total", "Lines of a watched program (sshd, sudo, su...) "
                                 "that matched no known message: format drift.", ["source"], registry=registry)
        self._skipped = Counter("bastion_skipped_lines_total", "Lines counted but not parsed, by source and "
                                "reason (long: over the reader's limit; oversized: over the parser's; malformed: "
                                "no syslog envelope).", ["source", "reason"], registry=registry)
        self._source_errors = Counter("bastion_source_errors_total", "Failures to open or read a source "
                                      "(reported once per attempt; the source retries with back-off).",
                                      ["source"], registry=registry)
        self._lag = Gauge("bastion_source_position_lag_bytes", "Bytes of the followed file not yet read "
                          "(size minus read offset); absent while unknown.", ["source"], registry=registry)
        self._decisions = Counter("bastion_decisions_total", "Decisions made by the rules, by rule and verdict.",
                                  ["rule", "verdict"], registry=registry)
        self._ban_actions = Counter("bastion_ban_actions_total", "Addresses handed to the firewall to ban or unban.",
                                    ["action"], registry=registry)
        self._banned = Gauge("bastion_banned_addresses", "Active bans (addresses and networks) in the state store.",
                             registry=registry)
        self._tracked = Gauge("bastion_tracked_keys", "Keys (addresses, users) the rules are counting right now.",
                              registry=registry)
        self._firewall_errors = Counter("bastion_firewall_errors_total", "Firewall changes that failed.",
                                        registry=registry)
        self._commit_errors = Counter("bastion_state_commit_errors_total", "Failed commits of positions and bans "
                                      "to the state database (retried with the next batch).", registry=registry)
        self._processing = Histogram("bastion_processing_seconds", "Time to parse, decide, enforce and commit "
                                     "one batch.", buckets=PROCESSING_BUCKETS, registry=registry)

        self._output_events = Counter("bastion_output_events_total", "Shipped records by output (sink) and "
                                      "result: sent, skipped, held (paced by the sink), failed, retried, "
                                      "rejected (dead-lettered), dropped (spool full).", ["output", "result"],
                                      registry=registry)
        self._output_queue = Gauge("bastion_output_queue_events", "Records in the spool an output has not "
                                   "finished yet.", ["output"], registry=registry)
        self._output_oldest = Gauge("bastion_output_queue_oldest_age_seconds", "Age of the oldest record an "
                                    "output has not finished (0 when none).", ["output"], registry=registry)
        self._output_send = Histogram("bastion_output_send_duration_seconds", "Time of one delivery call to an "
                                      "output.", ["output"], buckets=SEND_BUCKETS, registry=registry)
        self._output_up = Gauge("bastion_output_up", "1 while an output's far end answers, else 0.", ["output"],
                                registry=registry)
        self._per_output: dict[str, dict[str, _Child]] = {}
        self._key_steps = Counter("bastion_key_steps_total", "Key lifecycle steps run by bastiond (departures, "
                                  "scheduled rotations) by action and outcome.", ["action", "outcome"],
                                  registry=registry)
        self._key_step_series = {
            (action, outcome): self._key_steps.labels(action=action, outcome=outcome)
            for action in KEY_ACTIONS for outcome in KEY_OUTCOMES
        }

        self._per_source: dict[str, _SourceSeries] = {}
        self._event_series: dict[tuple[Kind, Outcome], _Child] = {
            (kind, outcome): self._events.labels(kind=kind.value, outcome=outcome.value)
            for kind, outcome in EVENT_OUTCOMES.items()
        }
        self._decision_series: dict[tuple[str, str], _Child] = {}
        self._action_series = {action: self._ban_actions.labels(action=action) for action in BAN_ACTIONS}
        self._lag_series: dict[str, Gauge] = {}
        for source in sources:
            self.add_source(source)
        self.set_rules(rules)

    # --- set-up ---------------------------------------------------------------------------------------

    def add_source(self, source: str) -> None:
        """Create the series of a configured source at 0 (idempotent)."""
        if source not in self._per_source:
            skipped = self._skipped
            self._per_source[source] = _SourceSeries(
                lines=self._lines.labels(source=source),
                unparsed=self._unparsed.labels(source=source),
                long=skipped.labels(source=source, reason="long"),
                oversized=skipped.labels(source=source, reason="oversized"),
                malformed=skipped.labels(source=source, reason="malformed"),
                errors=self._source_errors.labels(source=source),
            )

    def set_rules(self, rules: Iterable[tuple[str, str]]) -> None:
        """Create ``bastion_decisions_total`` at 0 for each ``(rule name, verdict)``; series of rules dropped by
        a reload stay (a counter that vanishes would read as a reset)."""
        for rule, verdict in rules:
            self._decision_child(rule, verdict)

    def mark_up(self) -> None:
        """The processing loop runs: bans restored, sources open."""
        self._up.set(1)

    def mark_down(self) -> None:
        """The loop is stopping (or never got going)."""
        self._up.set(0)

    # --- the processing loop ----------------------------------------------------------------------------

    def observe_batch(
        self,
        source: str,
        *,
        lines: int,
        events: Mapping[tuple[Kind, Outcome], int] | None = None,
        unmatched: int = 0,
        skipped_long: int = 0,
        oversized: int = 0,
        malformed: int = 0,
        seconds: float | None = None,
    ) -> None:
        """Count one batch of ``source``: lines parsed, events by ``(kind, outcome)``, lines of watched programs
        that matched nothing (``unmatched``), lines skipped per :data:`SKIP_REASONS`, and how long the batch took
        end to end (parse to commit)."""
        series = self._per_source.get(source)
        if series is None:
            self.add_source(source)
            series = self._per_source[source]
        if lines:
            series.lines.inc(lines)
        if unmatched:
            series.unparsed.inc(unmatched)
        if skipped_long:
            series.long.inc(skipped_long)
        if oversized:
            series.oversized.inc(oversized)
        if malformed:
            series.malformed.inc(malformed)
        if events:
            known = self._event_series
            for key, count in events.items():
                child = known.get(key)
                if child is None:
                    child = self._event_child(*key)
                child.inc(count)
        if seconds is not None:
            self._processing.observe(seconds)

    def source_error(self, source: str) -> None:
        """A source failed to open or read (it retries by itself)."""
        series = self._per_source.get(source)
        if series is None:
            self.add_source(source)
            series = self._per_source[source]
        series.errors.inc()

    def set_position_lag(self, source: str, lag_bytes: int | None) -> None:
        """Bytes of the followed file after the read position; ``None`` removes the series (unknown: a journal,
        a rotated file still being drained, a file that cannot be stat'ed)."""
        series = self._lag_series.get(source)
        if lag_bytes is None:
            if series is not None:
                del self._lag_series[source]
                self._lag.remove(source)
            return
        if series is None:
            series = self._lag_series[source] = self._lag.labels(source=source)
        series.set(max(lag_bytes, 0))

    def decision(self, rule: str, verdict: str, count: int = 1) -> None:
        """``count`` decisions of ``rule`` with ``verdict`` (a :class:`~bastion_guard.decisions.Verdict`)."""
        child = self._decision_series.get((rule, verdict))
        if child is None:
            child = self._decision_child(rule, verdict)
        child.inc(count)

    def ban_action(self, action: str, count: int) -> None:
        """``count`` addresses handed to the firewall; ``action`` is one of :data:`BAN_ACTIONS`."""
        child = self._action_series.get(action)
        if child is None:
            raise ValueError(f"unknown ban action {action!r} (known: {', '.join(BAN_ACTIONS)})")
        if count:
            child.inc(count)

    def set_active_bans(self, count: int) -> None:
        """How many bans are active now."""
        self._banned.set(count)

    def set_tracked_keys(self, count: int) -> None:
        """How many keys the rules' windows hold now."""
        self._tracked.set(count)

    def firewall_error(self) -> None:
        """A firewall change failed."""
        self._firewall_errors.inc()

    def commit_error(self) -> None:
        """Positions and bans could not be saved (the daemon retries)."""
        self._commit_errors.inc()

    # --- shipping ---------------------------------------------------------------------------------------

    def add_output(self, output: str) -> None:
        """Create the series of a configured sink at 0 (idempotent)."""
        if output not in self._per_output:
            self._per_output[output] = {
                result: self._output_events.labels(output=output, result=result) for result in OUTPUT_RESULTS
            }
            self._output_queue.labels(output=output).set(0)
            self._output_oldest.labels(output=output).set(0)
            self._output_send.labels(output=output)
            self._output_up.labels(output=output).set(0)

    def remove_output(self, output: str) -> None:
        """Drop the series of a sink a reload removed, so dashboards do not show it frozen in its last state."""
        if self._per_output.pop(output, None) is None:
            return
        for result in OUTPUT_RESULTS:
            self._output_events.remove(output, result)
        for metric in (self._output_queue, self._output_oldest, self._output_send, self._output_up):
            metric.remove(output)

    def output_events(self, output: str, result: str, count: int) -> None:
        """``count`` records of ``output`` had ``result`` (one of :data:`OUTPUT_RESULTS`)."""
        if result not in OUTPUT_RESULTS:
            raise ValueError(f"unknown output result {result!r} (known: {', '.join(OUTPUT_RESULTS)})")
        self.add_output(output)
        if count:
            self._per_output[output][result].inc(count)

    def key_step(self, action: str, outcome: str) -> None:
        """One key lifecycle step; anything outside the known sets is counted as ``other`` / ``info`` so a new
        step name in the key code can never grow the label set without this table being updated."""
        series = self._key_step_series.get((action, outcome))
        if series is None:
            series = self._key_steps.labels(action=action if action in KEY_ACTIONS else "other",
                                            outcome=outcome if outcome in KEY_OUTCOMES else "info")
        series.inc()

    def set_output_queue(self, output: str, depth: int, oldest_age_secs: float | None) -> None:
        """The spool backlog of ``output``."""
        self._output_queue.labels(output=output).set(depth)
        self._output_oldest.labels(output=output).set(oldest_age_secs or 0.0)

    def observe_send(self, output: str, seconds: float) -> None:
        """One delivery call to ``output`` took ``seconds``."""
        self._output_send.labels(output=output).observe(seconds)

    def set_output_up(self, output: str, up: bool) -> None:
        """Whether ``output``'s far end answers."""
        self._output_up.labels(output=output).set(1 if up else 0)

    # --- serving ----------------------------------------------------------------------------------------

    def serve(self, address: str = DEFAULT_ADDRESS, port: int = DEFAULT_PORT) -> WSGIServer | None:
        """Serve ``/metrics`` on ``address``:``port`` from a daemon thread; raise :class:`BastionError` if that fails.

        Whether to serve at all is the caller's choice (``metrics.port: 0`` in the configuration turns it off);
        ``port=0`` here asks the kernel for a free port, which tests use (read it from the returned server's
        ``server_address``). Returns the server (None with prometheus_client < 0.20, which cannot be stopped).
        """
        if self._server is not None:
            raise BastionError("metrics: already serving")
        try:
            started = start_http_server(port, addr=address, registry=self.registry)
        except OSError as error:  # address in use, not an address of this host, unknown name
            where = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
            raise BastionError(f"metrics: cannot listen on {where}: {error.strerror or error}") from error
        self._server = started[0] if isinstance(started, tuple) else None
        return self._server

    def close(self) -> None:
        """Stop serving (waits for the server thread's poll, at most about half a second)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    # --- helpers -----------------------------------------------------------------------------------------

    def _event_child(self, kind: Kind | str, outcome: Outcome | str) -> _Child:
        key = (Kind(kind), Outcome(outcome))  # ValueError for anything outside the enums: labels stay bounded
        child = self._events.labels(kind=key[0].value, outcome=key[1].value)
        self._event_series[key] = child
        return child

    def _decision_child(self, rule: str, verdict: str) -> _Child:
        value = Verdict(verdict).value
        child = self._decisions.labels(rule=rule, verdict=value)
        self._decision_series[(rule, verdict)] = child
        self._decision_series[(rule, value)] = child
        return child


__all__ = [
    "BAN_ACTIONS", "DEFAULT_ADDRESS", "DEFAULT_PORT", "EVENT_OUTCOMES", "KEY_ACTIONS", "KEY_OUTCOMES",
    "OUTPUT_RESULTS", "SKIP_REASONS", "Metrics",
]
