"""A digest: many records over the rate limit, told in one message that counts all of them.

"4,980 more bans by sshd-bruteforce in the last 60s, e.g. 203.0.113.7, 203.0.113.9, ...": every record
is counted in exactly one line, so nothing vanishes silently, and the message id is derived from the
covered record ids, so a digest re-sent after a crash carries the same ``webhook-id``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bastion_guard.durations import format_duration
from bastion_guard.shipping.records import Record, record_id
from bastion_guard.shipping.webhook.routing import Group, digest_group

EXAMPLES = 5  # targets named per line: enough to recognise a pattern, short enough for a chat message

_NOUNS = {"decision": "{verdict}s", "ban": "manual bans", "unban": "unbans", "key": "key events",
          "audit": "daemon events"}


@dataclass(frozen=True, slots=True)
class DigestLine:
    """One group's share of a digest."""

    group: Group
    count: int
    first_epoch: float
    last_epoch: float
    examples: tuple[str, ...]

    def describe(self) -> str:
        """``4,980 more bans by sshd-bruteforce in the last 60s`` (plain text, not escaped)."""
        noun = _NOUNS.get(self.group.kind, "records").format(verdict=self.group.verdict or "record")
        by = f" by {self.group.rule}" if self.group.rule else ""
        span = format_duration(max(1.0, self.last_epoch - self.first_epoch))
        return f"{self.count:,} more {noun}{by} in the last {span}"


@dataclass(frozen=True, slots=True)
class Digest:
    """The records one digest message covers, grouped; ``id`` is stable for the same records."""

    id: str
    lines: tuple[DigestLine, ...]
    record_ids: tuple[str, ...]
    last_epoch: float

    @property
    def total(self) -> int:
        """How many records it covers."""
        return len(self.record_ids)


def build_digest(records: Sequence[Record]) -> Digest:
    """Group ``records`` (at least one) into a digest; the biggest group first."""
    groups: dict[Group, list[Record]] = {}
    for record in records:
        groups.setdefault(digest_group(record), []).append(record)
    lines = []
    for group, members in sorted(groups.items(), key=lambda item: (-len(item[1]), item[0])):
        epochs = [member.epoch for member in members]
        examples = tuple(str(member.body.get("target") or member.body.get("user") or member.id)
                         for member in members[:EXAMPLES])
        lines.append(DigestLine(group, len(members), min(epochs), max(epochs), examples))
    ids = tuple(sorted(record.id for record in records))
    return Digest(record_id("digest", *ids), tuple(lines), ids, max(record.epoch for record in records))
