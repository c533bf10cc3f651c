"""Records -> ECS 8.x documents (pure; no I/O).

Parsed lines keep every field Elastic's own ``system.auth`` pipeline produces (``event.category/type/
action/outcome``, ``source.ip/port``, ``user.name``, ``related.*``, ``process``, ``log.file.path``/
``log.offset``, ``event.original``), so detection rules and dashboards written for ``logs-system.auth-*``
work on ours by adding our index pattern; what is ours alone lives under ``bastion.*`` (ECS custom-field
guidance). ``event.id`` is the record id, the same as ``_id`` and GELF's ``_event_id``.

Two data streams (docs/conventions.md 1.3): ``logs-bastion.auth-<ns>`` for what the log said, and
``logs-bastion.audit-<ns>`` for what bastiond did or decided (bans, alerts, unbans, key steps, its own life
cycle). They differ in volume, retention needs and who reads them (a SOC reads the audit trail; the auth
stream is bulk evidence), and ECS tells them apart by ``event.kind`` (``event`` vs ``alert``) anyway.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from bastion_guard.shipping.records import Record, RecordKind, iso_time

ECS_VERSION = "8.11.0"
AUTH_DATASET = "bastion.auth"
AUDIT_DATASET = "bastion.audit"

_LOGIN = (("authentication",), ("info",), "ssh_login")
_PREAUTH = (("network",), ("end",), "ssh_preauth_end")
_PAM_FAILURE = (("authentication",), ("info",), "authentication_failure")
# kind -> (event.category, event.type, event.action); the actions Elastic's pipeline uses where it has one.
_EVENT_SHAPES: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "auth_failure": _LOGIN,
    "invalid_user": _LOGIN,
    "user_not_allowed": _LOGIN,
    "root_login_refused": _LOGIN,
    "max_auth_exceeded": _LOGIN,
    "too_many_auth_failures": _LOGIN,
    "key_revoked": _LOGIN,
    "auth_success": (("authentication", "session"), ("info",), "ssh_login"),
    "preauth_close": _PREAUTH,
    "preauth_disconnect": _PREAUTH,
    "preauth_timeout": _PREAUTH,
    "handshake_error": (("network",), ("protocol",), "ssh_handshake_error"),
    "negotiation_failure": (("network",), ("protocol",), "ssh_negotiation_failure"),
    "penalty_drop": (("network",), ("denied",), "ssh_penalty_drop"),
    "connection": (("network",), ("start", "connection"), "ssh_connection"),
    "disconnect": (("session",), ("end",), "ssh_disconnect"),
    "session_opened": (("session",), ("start",), "logged-on"),
    "session_closed": (("session",), ("end",), "logged-off"),
    "reverse_mapping": (("network",), ("info",), "ssh_reverse_mapping"),
    "pam_auth_failure": _PAM_FAILURE,
    "pam_error": _PAM_FAILURE,
    "pam_more_failures": _PAM_FAILURE,
    "sudo_command": (("process",), ("start",), "sudo_command"),
    "sudo_failure": (("authentication",), ("info",), "sudo_failure"),
    "su_session": (("session",), ("start",), "su_session"),
    "su_failure": (("authentication",), ("info",), "su_failure"),
}
_UNKNOWN_SHAPE = (("host",), ("info",), "auth_log_event")
_OUTCOMES = {"success": "success", "failure": "failure"}  # "info" events carry no outcome (ECS: optional)


def data_stream(record: Record, namespace: str) -> str:
    """The data stream ``record`` goes to."""
    dataset = AUTH_DATASET if record.kind is RecordKind.EVENT else AUDIT_DATASET
    return f"logs-{dataset}-{namespace}"


def to_document(record: Record, namespace: str) -> dict[str, Any]:
    """The ECS document of ``record``."""
    if record.kind is RecordKind.EVENT:
        return _event_document(record, namespace)
    if record.kind is RecordKind.DECISION:
        return _decision_document(record, namespace)
    return _action_document(record, namespace)


def _base(record: Record, namespace: str, dataset: str) -> dict[str, Any]:
    bastion = record.body.get("bastion", "")
    return {
        "@timestamp": iso_time(record.epoch),
        "ecs": {"version": ECS_VERSION},
        "data_stream": {"type": "logs", "dataset": dataset, "namespace": namespace},
        "event": {"id": record.id, "dataset": dataset, "module": "bastion"},
        "host": {"name": bastion},
        "observer": {"type": "ids", "product": "bastiond", "hostname": bastion},
    }


def _event_document(record: Record, namespace: str) -> dict[str, Any]:
    body = record.body
    doc = _base(record, namespace, AUTH_DATASET)
    kind = str(body.get("kind", ""))
    category, types, action = _EVENT_SHAPES.get(kind, _UNKNOWN_SHAPE)
    program = body.get("program")
    event = doc["event"]
    event.update({"kind": "event", "category": list(category), "type": list(types), "action": action,
                  "original": body.get("raw", "")})
    if program:
        event["provider"] = program
    outcome = _OUTCOMES.get(str(body.get("outcome")))
    if outcome:
        event["outcome"] = outcome
    doc["message"] = _message(body)
    if body.get("host"):
        doc["host"]["hostname"] = body["host"]
    if program:
        process: dict[str, Any] = {"name": program}
        if body.get("pid") is not None:
            process["pid"] = body["pid"]
        doc["process"] = process
    source = str(body.get("source", ""))
    if source.startswith("file:"):
        doc["log"] = {"file": {"path": source.removeprefix("file:")}, "offset": body.get("position", 0)}
    related: dict[str, list[str]] = {}
    if body.get("ip"):
        doc["source"] = {"ip": body["ip"], "address": body["ip"]}
        if body.get("port") is not None:
            doc["source"]["port"] = body["port"]
        related["ip"] = [body["ip"]]
    elif body.get("client_host"):
        doc["source"] = {"domain": body["client_host"], "address": body["client_host"]}
    if body.get("user") is not None:
        doc["user"] = {"name": body["user"]}
        related["user"] = [body["user"]]
    if related:
        doc["related"] = related
    doc["bastion"] = _bastion_fields(body, source)
    return doc


def _bastion_fields(body: dict[str, Any], source: str) -> dict[str, Any]:
    fields: dict[str, Any] = {"event": {"kind": body.get("kind")}, "source": source}
    ssh = {name: body[name] for name in ("method", "key_type", "fingerprint", "cert_id", "cert_serial")
           if body.get(name) is not None}
    if body.get("user_valid") is not None:
        ssh["invalid_user"] = not body["user_valid"]
    if ssh:
        fields["ssh"] = ssh
    for name in ("attributed_by", "detail", "repeat"):
        if body.get(name) is not None:
            fields[name] = body[name]
    if not source.startswith("file:"):
        fields["position"] = body.get("position", 0)
    return fields


def _message(body: dict[str, Any]) -> str:
    """The text after ``program[pid]: `` (ECS ``message``); the whole line if the envelope is not found."""
    raw = str(body.get("raw", ""))
    program = body.get("program")
    if program:
        pid = body.get("pid")
        marker = f"{program}[{pid}]: " if pid is not None else f"{program}: "
        _, found, rest = raw.partition(marker)
        if found:
            return rest
    return raw


def _decision_document(record: Record, namespace: str) -> dict[str, Any]:
    body = record.body
    doc = _base(record, namespace, AUDIT_DATASET)
    is_ban = body.get("verdict") == "ban"
    doc["event"].update({
        "kind": "alert",
        "category": ["intrusion_detection", "network"] if is_ban else ["intrusion_detection"],
        "type": ["denied"] if is_ban else ["info"],
        "action": "ip-banned" if is_ban else "alert",
        "reason": body.get("reason", ""),
    })
    doc["rule"] = {"name": body.get("rule", ""), "ruleset": "bastiond"}
    _target(doc, str(body.get("target", "")))
    if body.get("user"):
        doc["user"] = {"name": body["user"]}
        doc.setdefault("related", {})["user"] = [body["user"]]
    ban = {"target": body.get("target"), "origin": body.get("origin"), "offence": body.get("offence"),
           "count": body.get("count"), "evidence": body.get("evidence", [])}
    if is_ban:
        ban["timeout_seconds"] = body.get("duration_secs")
        if body.get("expires") is not None:
            ban["expires"] = iso_time(float(body["expires"]))
    doc["bastion"] = {"ban" if is_ban else "alert": ban}
    return doc


def _action_document(record: Record, namespace: str) -> dict[str, Any]:
    body = record.body
    doc = _base(record, namespace, AUDIT_DATASET)
    kind = record.kind
    if kind in (RecordKind.BAN, RecordKind.UNBAN):
        banned = kind is RecordKind.BAN
        doc["event"].update({
            "kind": "event", "category": ["intrusion_detection", "network"],
            "type": ["denied" if banned else "allowed"], "action": "ip-banned" if banned else "ip-unbanned",
            "reason": body.get("reason", ""),
        })
        _target(doc, str(body.get("target", "")))
        doc["rule"] = {"name": body.get("rule", "manual"), "ruleset": "bastiond"}
    elif kind is RecordKind.KEY:
        doc["event"].update({"kind": "event", "category": ["iam"], "type": ["change"],
                             "action": str(body.get("action", "ssh-key-change"))})
        if body.get("user"):
            doc["user"] = {"target": {"name": body["user"]}}
    else:
        doc["event"].update({"kind": "event", "category": ["configuration"], "type": ["change"],
                             "action": str(body.get("action", "bastiond-audit"))})
    doc["bastion"] = {kind.value: {key: value for key, value in body.items() if key != "bastion"}}
    return doc


def _target(doc: dict[str, Any], target: str) -> None:
    """``source.ip`` for an address; a network stays in ``bastion.*`` only (``source.ip`` is one address)."""
    try:
        ipaddress.ip_address(target)
    except ValueError:  # a network, or a user name (even "123456"): the cluster would reject the document
        return
    doc["source"] = {"ip": target, "address": target}
    doc["related"] = {"ip": [target]}
