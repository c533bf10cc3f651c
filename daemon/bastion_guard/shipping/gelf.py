"""Records -> GELF 1.1 payloads (pure; no I/O).

A payload carries the spec's fields (``version``, ``host``, ``short_message``, ``full_message``,
``timestamp`` in seconds with milliseconds, and ``level`` always: left out, Graylog would file every message
as 1/ALERT) plus flat additional fields. Names are flat ``snake_case`` (``_source_ip``, ``_user_name``)
because Graylog rewrites dots to underscores when it indexes, so a dotted name would be searched under
another spelling than the one streams and pipelines see. ``_event_id`` is the record id, the same value
as Elasticsearch's ``event.id`` and ``_id``, so one event can be followed across both platforms and
duplicates from an at-least-once replay can be recognised. ``_id`` itself is never sent (the spec says
libraries SHOULD NOT, and Graylog drops it).

Values come from the log and are attacker-chosen (user names): they only ever appear as JSON string
values, which escape every control character, so a name holding ``\\n``, ``\\0`` (the TCP frame end) or
``from 203.0.113.9`` stays one value of ``_user_name`` and cannot become a field, a frame or an address.
In ``short_message`` a user name is shown JSON-quoted, so a reader of the summary sees where it ends.

Levels (syslog severities):

========================  =====  ===============================================================
record                    level  why
========================  =====  ===============================================================
event, outcome failure      4    warning: a refused login or sudo attempt
event, otherwise            6    info
decision ``ban``            4    warning: an attack is under way, and it is being handled
decision ``alert``          1    alert: the rule exists because a human must act now (root login,
                                 a revoked key tried, a departed user)
manual ban                  4    warning, as a decided ban
unban, key step             5    notice: a normal but significant change
audit                       6    info; 3 (err) when the record reports a failure
========================  =====  ===============================================================
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Callable
from typing import Any

from bastion_guard.durations import format_duration
from bastion_guard.shipping.records import Record, RecordKind, iso_time

GELF_VERSION = "1.1"
FIELD_NAME = re.compile(r"^_[\w.\-]+$")  # the spec's ^[\w\.\-]*$, after the leading underscore
TRUNCATION_MARK = " [truncated]"

EMERGENCY, ALERT, CRITICAL, ERROR, WARNING, NOTICE, INFO, DEBUG = range(8)

_SHORT_MESSAGE_CHARS = 500  # a summary, not the evidence: the whole line is in full_message
# Event body key -> additional field. Names follow docs/conventions.md 2.4 (ECS names, underscored).
_EVENT_FIELDS = (
    ("kind", "_event_kind"), ("outcome", "_event_outcome"), ("ip", "_source_ip"), ("port", "_source_port"),
    ("client_host", "_source_domain"), ("user", "_user_name"), ("user_valid", "_user_valid"),
    ("program", "_process_name"), ("pid", "_process_pid"), ("method", "_ssh_method"),
    ("key_type", "_ssh_key_type"), ("fingerprint", "_ssh_key_fingerprint"), ("cert_id", "_ssh_cert_id"),
    ("cert_serial", "_ssh_cert_serial"), ("attributed_by", "_attributed_by"), ("detail", "_event_detail"),
    ("repeat", "_event_repeat"), ("host", "_log_host"), ("source", "_log_source"), ("position", "_log_offset"),
    ("utc_offset", "_log_utc_offset"),
)
# Action body keys (manual bans, unbans, key and audit steps) that have a shared name across record kinds.
_SHARED_ACTION_FIELDS = {"user": "_user_name", "rule": "_rule_name", "duration_secs": "_ban_timeout_seconds",
                         "reason": "_reason", "origin": "_origin"}
# One encoder for every message: json.dumps with options builds a new one per call, half the cost of encoding.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_FIELD_NAME_UNSAFE = re.compile(r"[^\w.\-]")
_INT64 = 2**63  # Graylog stores whole numbers as long: larger ones (certificate serials) go as text


def to_gelf(record: Record) -> dict[str, Any]:
    """The GELF payload of ``record``."""
    build = _BUILDERS.get(record.kind, _action_payload)
    return build(record)


def encode(payload: dict[str, Any]) -> bytes:
    """The payload as compact UTF-8 JSON.

    ``ensure_ascii=False`` keeps non-ASCII text compact; JSON still escapes every control character (so no
    ``\\0`` can end a TCP frame early). A lone surrogate (never produced by our readers, which keep invalid
    bytes as ``\\xNN``) is written as a ``\\udcNN`` escape rather than failing the whole batch.
    """
    return _ENCODER.encode(payload).encode("utf-8", "backslashreplace")


def fit(payload: dict[str, Any], limit: int, measure: Callable[[dict[str, Any]], int]) -> dict[str, Any] | None:
    """``payload`` itself if ``measure(payload) <= limit``; else a copy whose ``full_message`` (the raw line
    or the evidence list: the structured fields keep their values) is cut to fit and marked, with
    ``_truncated_from_bytes`` saying how long it was; ``None`` when even no ``full_message`` is too big.

    Shortening is proportional and repeated a few times, since a compressed size does not shrink linearly.
    """
    size = measure(payload)
    if size <= limit:
        return payload
    full = str(payload.get("full_message", ""))
    original = len(full.encode("utf-8", "backslashreplace"))
    for _ in range(8):
        full = full[: min(int(len(full) * limit / size * 0.9), len(full) - 1)]
        if not full:
            break
        candidate = {**payload, "full_message": full + TRUNCATION_MARK, "_truncated_from_bytes": original}
        size = measure(candidate)
        if size <= limit:
            return candidate
    candidate = {**payload, "_truncated_from_bytes": original}  # the last resort: no full_message at all
    candidate.pop("full_message", None)
    return candidate if measure(candidate) <= limit else None


# --- per kind ---------------------------------------------------------------------------------------------------


def _base(record: Record, short_message: str, level: int) -> dict[str, Any]:
    payload = {
        "version": GELF_VERSION,
        "host": str(record.body.get("bastion") or "bastiond"),
        "short_message": _short(short_message),
        "timestamp": round(record.epoch, 3),
        "level": level,
        "_event_id": record.id,
        "_record_kind": record.kind.value,
    }
    if not math.isfinite(record.epoch):  # JSON has no NaN: such a record would fail to encode on every retry
        del payload["timestamp"]  # the spec's SHOULD: the input stamps it on arrival
    return payload


def _event_payload(record: Record) -> dict[str, Any]:
    body = record.body
    level = WARNING if body.get("outcome") == "failure" else INFO
    payload = _base(record, _event_summary(body), level)
    raw = body.get("raw")
    if raw:
        payload["full_message"] = str(raw)
    get = body.get
    for key, name in _EVENT_FIELDS:  # the hot loop of the sink: _put's checks, inlined for the common types
        value = get(key)
        if value is None or value == "":
            continue
        payload[name] = value if type(value) is str else _scalar(value)
    return payload


def _event_summary(body: dict[str, Any]) -> str:
    """``sshd: auth failure for user "admin" from 203.0.113.7 port 52100``: what happened, from parsed
    fields only (the raw line, with its attacker-written parts, is in ``full_message``)."""
    parts = [f"{body.get('program') or 'log'}: {str(body.get('kind') or 'event').replace('_', ' ')}"]
    if body.get("user") is not None:
        invalid = "invalid " if body.get("user_valid") is False else ""
        parts.append(f"for {invalid}user {_quoted(body['user'])}")
    client = body.get("ip") or body.get("client_host")
    if client:
        parts.append(f"from {client if body.get('ip') else _quoted(client)}")
        if body.get("port") is not None:
            parts.append(f"port {body['port']}")
    return " ".join(parts)


def _decision_payload(record: Record) -> dict[str, Any]:
    body = record.body
    is_ban = body.get("verdict") == "ban"
    target = str(body.get("target", ""))
    if is_ban:
        duration = body.get("duration_secs")
        span = f" for {format_duration(float(duration))}" if isinstance(duration, int | float) else ""
        summary = f"ban {target}{span}: rule {body.get('rule')}, offence {body.get('offence')}"
    else:
        summary = f"alert {body.get('rule')} on {_quoted(target)}"
    if body.get("reason"):
        summary += f": {body['reason']}"
    payload = _base(record, summary, WARNING if is_ban else ALERT)
    payload["full_message"] = _decision_details(body)
    _put(payload, "_decision_verdict", body.get("verdict"))
    _put(payload, "_rule_name", body.get("rule"))
    _put(payload, "_decision_target", target)
    _put_target(payload, target)
    _put(payload, "_user_name", body.get("user"))
    _put(payload, "_decision_reason", body.get("reason"))
    _put(payload, "_decision_count", body.get("count"))
    _put(payload, "_decision_offence", body.get("offence"))
    _put(payload, "_origin", body.get("origin"))
    if is_ban:
        _put(payload, "_ban_timeout_seconds", body.get("duration_secs"))
        expires = body.get("expires")
        if isinstance(expires, int | float):
            payload["_ban_expires"] = iso_time(float(expires))
    evidence = body.get("evidence") or []
    payload["_evidence_count"] = len(evidence)
    return payload


def _decision_details(body: dict[str, Any]) -> str:
    """The reason and one line per piece of evidence (where the line is, not the line itself)."""
    lines = [str(body.get("reason") or body.get("rule") or "")]
    for item in body.get("evidence") or []:
        if isinstance(item, dict):
            epoch = item.get("epoch")
            when = iso_time(float(epoch)) if isinstance(epoch, int | float) else "?"
            lines.append(f"evidence: {when} {item.get('source', '')} at {item.get('position', '')}")
    return "\n".join(lines)


def _action_payload(record: Record) -> dict[str, Any]:
    """Manual bans and unbans, key lifecycle and audit steps: their bodies are free-form keyword fields."""
    body = {key: value for key, value in record.body.items() if key != "bastion"}
    kind = record.kind
    failed = body.get("outcome") in ("failure", "error") or bool(body.get("error"))
    level = {RecordKind.BAN: WARNING, RecordKind.UNBAN: NOTICE, RecordKind.KEY: NOTICE}.get(kind, INFO)
    payload = _base(record, _action_summary(kind, body), ERROR if failed else level)
    for key, value in body.items():
        if key == "target" and kind in (RecordKind.BAN, RecordKind.UNBAN):
            _put(payload, "_decision_target", value)
            _put_target(payload, str(value))
        else:
            _put(payload, _SHARED_ACTION_FIELDS.get(key) or _action_field_name(kind, key), value)
    return payload


def _action_summary(kind: RecordKind, body: dict[str, Any]) -> str:
    if kind in (RecordKind.BAN, RecordKind.UNBAN):
        duration = body.get("duration_secs")
        span = f" for {format_duration(float(duration))}" if isinstance(duration, int | float) else ""
        summary = f"{kind.value} {body.get('target', '')}{span}"
        if body.get("origin"):
            summary += f" by {body['origin']}"
        return summary + (f": {body['reason']}" if body.get("reason") else "")
    words = [f"{key}={_quoted(value) if isinstance(value, str) else _scalar(value)}" for key, value in body.items()
             if value is not None and key != "action"]
    action = body.get("action")
    head = f"{kind.value} {action}" if isinstance(action, str) and action else kind.value
    return " ".join([head + ":", *words]) if words else head


def _action_field_name(kind: RecordKind, key: str) -> str:
    """``_<kind>_<key>``: the prefix keeps free-form keys from colliding with ours (and ``id`` from being
    ``_id``); characters outside the spec's ``[\\w.-]`` become ``_``."""
    return f"_{kind.value}_{_FIELD_NAME_UNSAFE.sub('_', key)}"


# --- values ------------------------------------------------------------------------------------------------------


def _put(payload: dict[str, Any], name: str, value: object) -> None:
    """Set an additional field; GELF values are strings or numbers, so ``None`` is left out, booleans
    become ``"true"``/``"false"``, huge integers and structures become text."""
    if value is None or value == "":
        return
    payload[name] = _scalar(value) if not isinstance(value, str) else value


def _scalar(value: object) -> str | int | float:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return value if -_INT64 <= value < _INT64 else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)  # JSON has no NaN or Infinity
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True, default=str)


def _put_target(payload: dict[str, Any], target: str) -> None:
    """``_source_ip`` for an address target, ``_source_network`` for a network; nothing for a user name."""
    try:
        network = ipaddress.ip_network(target, strict=False)
    except ValueError:
        return
    if "/" in target and network.num_addresses > 1:
        payload["_source_network"] = str(network)
    else:
        payload["_source_ip"] = str(network.network_address)


def _quoted(value: object) -> str:
    """JSON quoting: control characters escaped, the end of the value visible."""
    return _ENCODER.encode(str(value))


def _short(text: str) -> str:
    text = text.strip() or "-"  # short_message is required and Graylog refuses an empty one
    if len(text) > _SHORT_MESSAGE_CHARS:
        return text[: _SHORT_MESSAGE_CHARS - len(TRUNCATION_MARK)] + TRUNCATION_MARK
    return text


_BUILDERS: dict[RecordKind, Callable[[Record], dict[str, Any]]] = {
    RecordKind.EVENT: _event_payload,
    RecordKind.DECISION: _decision_payload,
}

__all__ = ["FIELD_NAME", "GELF_VERSION", "encode", "fit", "to_gelf"]
