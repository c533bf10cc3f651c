"""Records: what goes through the spool, in one neutral JSON-able shape that every sink translates.

``id`` is deterministic, so a record rebuilt from the same line after a crash or a replay has the same id:
Elasticsearch uses it as ``_id`` (a duplicate ``create`` comes back 409 and counts as delivered), GELF and
webhooks carry it so receivers can de-duplicate. Bodies hold no secrets, only what the log said and what we
decided.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import json
import math
import operator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bastion_guard.decisions import Decision
from bastion_guard.events import Event


class RecordKind(enum.StrEnum):
    """Families of records; sinks route on them (ECS data streams, webhook filters)."""

    EVENT = "event"  # one parsed auth-log line
    DECISION = "decision"  # a ban or alert decided by a rule (or arriving from elsewhere)
    BAN = "ban"  # a ban enforced by hand (bastionctl ban)
    UNBAN = "unban"  # a ban lifted (by hand, or by bastionctl unban --all)
    KEY = "key"  # key lifecycle steps: revocations, rotations, offboarding summaries
    AUDIT = "audit"  # daemon life cycle and configuration changes


@dataclass(frozen=True, slots=True)
class Record:
    """One spooled item. ``epoch`` is when it happened (event time), ``body`` is JSON-able."""

    id: str
    kind: RecordKind
    epoch: float
    body: dict[str, Any]

    def to_json(self) -> str:
        """The spool's stored form."""
        return json.dumps({"id": self.id, "kind": self.kind.value, "epoch": self.epoch, "body": self.body},
                          separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Record:
        """Inverse of :meth:`to_json`."""
        data = json.loads(text)
        return cls(data["id"], RecordKind(data["kind"]), float(data["epoch"]), data["body"])


def record_id(*parts: object) -> str:
    """A 32-hex-digit id from the parts that make a record unique (stable across processes and versions)."""
    # Each part followed by a NUL, hashed in one call (the same digest as one update per part, at a third of
    # the cost: the shipping workers compute one id per shipped line).
    text = "\x00".join(map(str, parts)) + "\x00"
    return hashlib.blake2b(text.encode("utf-8", "surrogateescape"), digest_size=16).hexdigest()


def iso_time(epoch: float, utc_offset: int = 0) -> str:
    """RFC 3339 with milliseconds, in UTC (``Z``): what Elasticsearch and GELF receivers parse fastest.

    The same text as ``datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")`` (microseconds
    rounded half to even, as datetime does, then cut to milliseconds), with the date and second formatted
    once per second: one call per shipped line, and lines come many to a second."""
    del utc_offset  # the original offset stays visible in event.original; shipped times are UTC
    fraction, whole = math.modf(epoch)
    micros = round(fraction * 1e6)
    if micros >= 1_000_000:
        whole, micros = whole + 1, micros - 1_000_000
    elif micros < 0:
        whole, micros = whole - 1, micros + 1_000_000
    return f"{_iso_second(int(whole))}.{micros // 1000:03d}Z"


@functools.lru_cache(maxsize=1024)
def _iso_second(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")


_EVENT_FIELDS = (
    "host", "program", "pid", "ip", "port", "user", "method", "key_type", "fingerprint", "cert_id",
    "cert_serial", "client_host", "user_valid", "attributed_by", "detail",
)

_event_values = operator.attrgetter(*_EVENT_FIELDS)  # all of them in one call: one record per shipped line


def event_record(event: Event, bastion: str) -> Record:
    """The record of one parsed line; ``bastion`` is this host's name (ids stay unique across a fleet)."""
    body: dict[str, Any] = {
        "kind": event.kind.value, "outcome": event.outcome.value, "utc_offset": event.utc_offset,
        "source": event.source, "position": event.position, "raw": event.raw, "bastion": bastion,
    }
    for name, value in zip(_EVENT_FIELDS, _event_values(event), strict=True):
        if value is not None:
            body[name] = value
    if event.repeat != 1:
        body["repeat"] = event.repeat
    return Record(event_id(event, bastion), RecordKind.EVENT, event.epoch, body)


_blake2b = hashlib.blake2b


def event_id(event: Event, bastion: str) -> str:
    """The id of :func:`event_record`: ``record_id("event", bastion, source, position, epoch, raw)``,
    written out as one f-string (the same text, at a third of the cost: one id per shipped line)."""
    text = f"event\x00{bastion}\x00{event.source}\x00{event.position}\x00{event.epoch}\x00{event.raw}\x00"
    return _blake2b(text.encode("utf-8", "surrogateescape"), digest_size=16).hexdigest()


def decision_record(decision: Decision, bastion: str) -> Record:
    """The record of a ban or alert decision, evidence included (as source/position pointers)."""
    body: dict[str, Any] = {
        "verdict": decision.verdict.value, "rule": decision.rule, "target": decision.target,
        "duration_secs": decision.duration_secs, "expires": decision.expires, "count": decision.count,
        "offence": decision.offence, "reason": decision.reason, "user": decision.user,
        "origin": decision.origin, "bastion": bastion,
        "evidence": [{"epoch": e.epoch, "source": e.source, "position": e.position} for e in decision.evidence],
    }
    rid = record_id("decision", bastion, decision.verdict.value, decision.rule, decision.target, decision.epoch,
                    decision.offence)
    return Record(rid, RecordKind.DECISION, decision.epoch, body)


def action_record(kind: RecordKind, epoch: float, bastion: str, **fields: Any) -> Record:
    """A record for manual bans/unbans, key lifecycle and audit steps: ``fields`` must be JSON-able.

    The id covers every field, so the same step recorded twice (a re-run that repeats it) is one record.
    """
    body = {"bastion": bastion, **fields}
    rid = record_id(kind.value, bastion, epoch, json.dumps(fields, sort_keys=True, default=str))
    return Record(rid, kind, epoch, body)
