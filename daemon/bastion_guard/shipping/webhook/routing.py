"""Which records go to a destination, which are repeats, and how the rest group into digests.

All three answers come from the record alone, so a record replayed after a restart is routed, recognised
and grouped exactly as the first time.
"""

from __future__ import annotations

from dataclasses import dataclass

from bastion_guard.shipping.records import Record, RecordKind
from bastion_guard.shipping.webhook.config import WebhookConfig

DedupKey = tuple[str, str, str, str]


@dataclass(frozen=True, slots=True, order=True)
class Group:
    """What a digest counts together: the same kind of record from the same rule (``verdict`` may be empty)."""

    kind: str
    verdict: str
    rule: str


def selection_problem(config: WebhookConfig, record: Record) -> str | None:
    """Why ``record`` is not for this destination (the SKIPPED reason), or None if it is."""
    if record.kind not in config.kinds:
        return f"{record.kind} records are not routed to this webhook"
    body = record.body
    if record.kind is RecordKind.DECISION:
        if body.get("verdict") not in config.verdicts:
            return f"verdict {body.get('verdict')!r} is not routed to this webhook"
        if not config.selects_rule(str(body.get("rule", ""))):
            return f"rule {body.get('rule')!r} is not routed to this webhook"
    if record.kind is RecordKind.KEY and not config.key_steps and not body.get("summary"):
        return "key lifecycle step without a summary (key_steps: true sends every step)"
    return None


def dedup_key(record: Record) -> DedupKey | None:
    """The (kind, rule, target, verdict) an alert repeats on; None for records that never repeat
    (key and audit records: their spool ids already make replays harmless)."""
    body = record.body
    if record.kind is RecordKind.DECISION:
        return ("decision", str(body.get("rule", "")), str(body.get("target", "")), str(body.get("verdict", "")))
    if record.kind in (RecordKind.BAN, RecordKind.UNBAN):
        return (record.kind.value, str(body.get("rule", "")), str(body.get("target", "")), "")
    return None


def digest_group(record: Record) -> Group:
    """The digest line a record is counted in."""
    body = record.body
    return Group(record.kind.value, str(body.get("verdict", "")), str(body.get("rule", "")))


class RecentAlerts:
    """Dedup keys sent recently, on *event* time: a replay of a log decides the same as live traffic.

    Memory is bounded by what fits in the window; keys older than the newest epoch minus the window
    are forgotten as the window moves.
    """

    def __init__(self, window_secs: float) -> None:
        self._window = window_secs
        self._sent: dict[DedupKey, float] = {}
        self._newest = float("-inf")

    def seen(self, key: DedupKey, epoch: float) -> bool:
        """Whether ``key`` was sent within the window around ``epoch``."""
        last = self._sent.get(key)
        return last is not None and abs(epoch - last) < self._window

    def remember(self, key: DedupKey, epoch: float) -> None:
        """``key`` was covered by an accepted message."""
        if self._window <= 0:
            return
        self._sent[key] = max(epoch, self._sent.get(key, epoch))
        if epoch > self._newest + self._window:  # prune at most once per window: amortised O(1)
            self._newest = epoch
            horizon = epoch - self._window
            self._sent = {k: t for k, t in self._sent.items() if t >= horizon}
