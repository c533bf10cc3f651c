"""Payloads: what a record or a digest looks like to a generic receiver, to Slack and to Alertmanager.

Pure functions of the record, so a retried message is byte-for-byte the one first attempted. Text that an
attacker can choose (user names, and targets of user-keyed alerts) reaches Slack only escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bastion_guard.durations import format_duration
from bastion_guard.shipping.records import Record, RecordKind, iso_time
from bastion_guard.shipping.webhook.digest import Digest

_MAX_FIELD = 200  # sshd caps user names at 100 characters; anything longer is cut for display
_EXAMPLE_CHARS = 60  # per digest example: five of them fit on a line
_SLACK_SECTION_CHARS = 3000  # Block Kit's limit for a section's text

# --- what happened, in words ------------------------------------------------------------------------------


def event_type(record: Record) -> str:
    """The Standard Webhooks ``type``: ``ban.created``, ``alert.created``, ``ban.deleted``, ``key.<action>``..."""
    body = record.body
    if record.kind is RecordKind.DECISION:
        return "ban.created" if body.get("verdict") == "ban" else "alert.created"
    if record.kind is RecordKind.BAN:
        return "ban.created"
    if record.kind is RecordKind.UNBAN:
        return "ban.deleted"
    prefix = "key" if record.kind is RecordKind.KEY else "daemon"
    return f"{prefix}.{body.get('action') or body.get('step') or 'event'}"


def headline(record: Record) -> str:
    """One plain-text line (not escaped) saying what happened."""
    body = record.body
    target = _cut(body.get("target", "?"))
    if record.kind is RecordKind.DECISION:
        rule, reason = _cut(body.get("rule", "?")), _cut(body.get("reason", ""))
        if body.get("verdict") == "ban":
            duration = body.get("duration_secs")
            length = f" for {format_duration(float(duration))}" if duration else ""
            return f"banned {target}{length} (rule {rule}: {reason})"
        user = f" user {_cut(body['user'])}" if body.get("user") and body.get("user") != body.get("target") else ""
        return f"alert {rule}: {target}{user} ({reason})"
    if record.kind is RecordKind.BAN:
        return f"banned {target} by hand" + (f" ({_cut(body['reason'])})" if body.get("reason") else "")
    if record.kind is RecordKind.UNBAN:
        return f"unbanned {target}"
    return _cut(body.get("summary") or body.get("action") or body.get("step") or record.kind.value)


def severity(record: Record) -> str:
    """Alertmanager severity: alerts (root login, revoked key tried...) page; bans inform."""
    if record.kind is RecordKind.DECISION:
        return "critical" if record.body.get("verdict") == "alert" else "warning"
    return "warning" if record.kind is RecordKind.KEY else "info"


# --- generic ---------------------------------------------------------------------------------------------


def generic_message(record: Record) -> dict[str, Any]:
    """``{"type", "timestamp", "data"}`` as Standard Webhooks suggests; ``data`` is the neutral record."""
    return {"type": event_type(record), "timestamp": iso_time(record.epoch),
            "data": {"id": record.id, "kind": record.kind.value, **record.body}}


def generic_digest(digest: Digest) -> dict[str, Any]:
    """A digest for programs: counts per group, examples, and every covered record id."""
    return {"type": "digest", "timestamp": iso_time(digest.last_epoch), "data": {
        "id": digest.id, "records": digest.total, "record_ids": list(digest.record_ids),
        "groups": [{"kind": line.group.kind, "verdict": line.group.verdict, "rule": line.group.rule,
                    "count": line.count, "first": iso_time(line.first_epoch), "last": iso_time(line.last_epoch),
                    "examples": list(line.examples), "text": line.describe()} for line in digest.lines],
    }}


# --- Slack -----------------------------------------------------------------------------------------------


def slack_escape(text: object) -> str:
    """Escape ``&``, ``<``, ``>``: Slack's only control characters in text, which make ``<!channel>``
    mentions and ``<url|label>`` links. Escaped, a hostile user name stays inert text."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_code(text: object) -> str:
    """``text`` as inline code, escaped; backticks and line breaks, which would end the span, are replaced."""
    flat = _cut(text).replace("`", "'").replace("\n", " ").replace("\r", " ")
    return f"`{slack_escape(flat)}`"


def slack_message(record: Record) -> dict[str, Any]:
    """An incoming-webhook message: fallback ``text`` plus a section and a context block."""
    body = record.body
    bastion = slack_escape(_cut(body.get("bastion", "")))
    if record.kind is RecordKind.DECISION:
        verb = "Banned" if body.get("verdict") == "ban" else f"Alert {slack_code(body.get('rule', '?'))}:"
        details = [f"rule {slack_code(body.get('rule', '?'))}", slack_escape(_cut(body.get("reason", "")))]
        if body.get("duration_secs"):
            details.append(f"expires in {format_duration(float(body['duration_secs']))}")
        if body.get("user") and body.get("user") != body.get("target"):
            details.append(f"user {slack_code(body['user'])}")
        main = f"*{verb}* {slack_code(body.get('target', '?'))} on *{bastion}*\n" + " · ".join(d for d in details if d)
    else:
        main = f"*{slack_escape(headline(record))}* on *{bastion}*"
    return {
        "text": slack_escape(f"{_cut(body.get('bastion', ''))}: {headline(record)}"),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": main}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"record {record.id}"}]},
        ],
    }


def slack_digest(digest: Digest, bastion: str) -> dict[str, Any]:
    """A digest for people: one line per group with a few examples."""
    where = slack_escape(_cut(bastion))
    text = f"*Digest* on *{where}*"
    for shown, line in enumerate(digest.lines):
        examples = ", ".join(slack_code(example[:_EXAMPLE_CHARS]) for example in line.examples)
        more = ", …" if line.count > len(line.examples) else ""
        entry = f"\n• {slack_escape(line.describe())}: {examples}{more}"
        if len(text) + len(entry) > _SLACK_SECTION_CHARS - 100:  # the rest is still counted, in one line
            rest = sum(other.count for other in digest.lines[shown:])
            text += f"\n• and {rest:,} more records of {len(digest.lines) - shown} other kinds or rules"
            break
        text += entry
    summary = f"{where}: rate limit reached, {digest.total:,} records in this digest"
    return {
        "text": summary,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"digest {digest.id}"}]},
        ],
    }


# --- Alertmanager ----------------------------------------------------------------------------------------

_ALERTNAMES = {RecordKind.BAN: "BastionManualBan", RecordKind.UNBAN: "BastionUnban",
               RecordKind.KEY: "BastionKeyLifecycle", RecordKind.AUDIT: "BastionDaemon"}


def alertmanager_alerts(records: Sequence[Record], alert_ttl_secs: float) -> list[dict[str, Any]]:
    """``postableAlerts`` for ``POST /api/v2/alerts``, one per record.

    The target is a label as well as an annotation: an alert's identity is its label set, so with the
    address only in annotations every ban of a rule would be one alert, each overwriting the last one's
    address and expiry. Grouping is the route's ``group_by`` (use ``[alertname, rule, instance]``), not
    the label set. The user name (attacker-chosen) stays in annotations.
    """
    return [_alert(record, alert_ttl_secs) for record in records]


def _alert(record: Record, alert_ttl_secs: float) -> dict[str, Any]:
    body = record.body
    if record.kind is RecordKind.DECISION:
        alertname = "BastionBan" if body.get("verdict") == "ban" else "BastionAlert"
    else:
        alertname = _ALERTNAMES.get(record.kind, "BastionEvent")
    labels = {"alertname": alertname, "rule": body.get("rule"), "severity": severity(record),
              "instance": body.get("bastion"), "target": body.get("target")}
    annotations = {"summary": headline(record), "target": body.get("target"), "user": body.get("user"),
                   "reason": body.get("reason"), "record_id": record.id}
    expires, duration = body.get("expires"), body.get("duration_secs")
    if isinstance(expires, int | float):
        ends = float(expires)
    elif isinstance(duration, int | float) and duration > 0:  # a manual ban carries its duration only
        ends = record.epoch + duration
    else:
        ends = record.epoch + alert_ttl_secs
    return {
        "labels": {key: _cut(value) for key, value in labels.items() if value not in (None, "")},
        "annotations": {key: _cut(value) for key, value in annotations.items() if value not in (None, "")},
        "startsAt": iso_time(record.epoch),
        "endsAt": iso_time(ends),
    }


def _cut(value: object) -> str:
    text = str(value)
    return text if len(text) <= _MAX_FIELD else text[: _MAX_FIELD - 1] + "…"
