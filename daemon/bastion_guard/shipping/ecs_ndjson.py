"""Bulk NDJSON for parsed-line records, written straight from the record body with per-kind templates.

:func:`bastion_guard.shipping.ecs.to_document` is the reference: it builds each document as nested dicts,
which orjson then serialises. For a parsed line most of that document never changes (``ecs``,
``data_stream``, ``observer``, the kind's ``event.category/type/action``), and building ~10 small dicts per
shipped line cost about as much as everything else the worker does. Here the static parts are serialised
once per (namespace, bastion) and per kind, and only the variable fields are encoded per line, each with
``orjson.dumps`` (so strings are escaped exactly as the reference's serialiser escapes them).

The bytes are the reference's, key for key and in the same order: ``tests/unit/test_ecs_ndjson.py`` parses
them back and compares them with ``to_document`` over every kind and the awkward cases.
"""

from __future__ import annotations

import functools
from typing import Any

import orjson

from bastion_guard.shipping import ecs
from bastion_guard.shipping.records import Record, iso_time

_dumps = orjson.dumps
_SSH_FIELDS = ("method", "key_type", "fingerprint", "cert_id", "cert_serial")
_OPTIONAL_FIELDS = ("attributed_by", "detail", "repeat")
_OUTCOMES = frozenset(ecs._OUTCOMES)  # the reference's; "info" carries no event.outcome


@functools.lru_cache(maxsize=64)
def _shape(kind: str) -> bytes:
    """``"kind":"event","category":[...],"type":[...],"action":...`` of one event kind (unknown ones too)."""
    category, types, action = ecs._EVENT_SHAPES.get(kind, ecs._UNKNOWN_SHAPE)  # the reference's table
    return b'"kind":"event","category":' + _dumps(list(category)) + b',"type":' + _dumps(list(types)) + \
        b',"action":' + _dumps(action)


@functools.lru_cache(maxsize=16)
def _templates(namespace: str, bastion: str) -> tuple[bytes, bytes, bytes, bytes, bytes]:
    """The static pieces of one (namespace, bastion): the action line up to the id, ``ecs``/``data_stream``
    up to ``event.id``, ``event`` from after the id to its kind's shape, ``host.name``, and ``observer``."""
    index = f"logs-{ecs.AUTH_DATASET}-{namespace}"
    action = b'{"create":{"_index":' + _dumps(index) + b',"_id":'
    stream = (b'"ecs":{"version":' + _dumps(ecs.ECS_VERSION) + b'},"data_stream":{"type":"logs","dataset":'
              + _dumps(ecs.AUTH_DATASET) + b',"namespace":' + _dumps(namespace) + b'},"event":{"id":')
    event_tail = b',"dataset":' + _dumps(ecs.AUTH_DATASET) + b',"module":"bastion",'
    host = b'"host":{"name":' + _dumps(bastion)
    return action, stream, event_tail, host, _observer(bastion)


def _observer(bastion: str) -> bytes:
    return b',"observer":{"type":"ids","product":"bastiond","hostname":' + _dumps(bastion) + b"}"


def event_lines(record: Record, namespace: str) -> bytes:
    """The ``create`` action and the ECS document of one parsed-line record, as two NDJSON lines.

    Exactly ``orjson.dumps`` of ``{"create": {"_index": data_stream(...), "_id": id}}`` and of
    ``to_document(record, namespace)``, each followed by a newline."""
    body = record.body
    get = body.get
    bastion = get("bastion", "")
    action, stream_head, stream_tail, host_start, observer = _templates(namespace, bastion)
    rid = _dumps(record.id)
    kind = str(get("kind", ""))
    program = get("program")
    pid = get("pid")
    raw = get("raw", "")
    parts: list[bytes] = [
        action, rid, b'}}\n{"@timestamp":', _dumps(iso_time(record.epoch)), b",", stream_head, rid, stream_tail,
        _shape(kind), b',"original":', _dumps(raw),
    ]
    if program:
        parts += (b',"provider":', _dumps(program))
    outcome = get("outcome")
    if outcome in _OUTCOMES:
        parts += (b',"outcome":"', outcome.encode(), b'"')
    parts.append(b"},")
    parts.append(host_start)
    host = get("host")
    if host:
        parts += (b',"hostname":', _dumps(host))
    parts += (b"}", observer, b',"message":', _dumps(_message(raw, program, pid)))
    if program:
        parts += (b',"process":{"name":', _dumps(program))
        if pid is not None:
            parts += (b',"pid":', _dumps(pid))
        parts.append(b"}")
    source = str(get("source", ""))
    from_file = source.startswith("file:")
    if from_file:
        parts += (b',"log":{"file":{"path":', _dumps(source[5:]), b'},"offset":', _dumps(get("position", 0)),
                  b"}")
    _source_and_user(parts, get("ip"), get("port"), get("client_host"), get("user"))
    parts += (b',"bastion":{"event":{"kind":', _dumps(get("kind")), b'},"source":', _dumps(source))
    _bastion_tail(parts, body, from_file)
    parts.append(b"}}\n")
    return b"".join(parts)


def _source_and_user(parts: list[bytes], ip: Any, port: Any, client_host: Any, user: Any) -> None:
    """``source``, ``user`` and ``related`` (see ``ecs._event_document``)."""
    address = _dumps(ip) if ip else b""
    if ip:
        parts += (b',"source":{"ip":', address, b',"address":', address)
        if port is not None:
            parts += (b',"port":', _dumps(port))
        parts.append(b"}")
    elif client_host:
        name = _dumps(client_host)
        parts += (b',"source":{"domain":', name, b',"address":', name, b"}")
    if user is not None:
        encoded_user = _dumps(user)
        parts += (b',"user":{"name":', encoded_user, b"}")
    if ip or user is not None:
        parts.append(b',"related":{')
        if ip:
            parts += (b'"ip":[', address, b"]")
        if user is not None:
            parts += (b',"user":[' if ip else b'"user":[', encoded_user, b"]")
        parts.append(b"}")


def _bastion_tail(parts: list[bytes], body: dict[str, Any], from_file: bool) -> None:
    """``bastion.ssh``, the optional fields and ``position`` (see ``ecs._bastion_fields``)."""
    get = body.get
    opened = False
    for name in _SSH_FIELDS:
        value = get(name)
        if value is not None:
            parts += (b',"' if opened else b',"ssh":{"', name.encode(), b'":', _dumps(value))
            opened = True
    user_valid = get("user_valid")
    if user_valid is not None:
        parts += (b',"invalid_user":' if opened else b',"ssh":{"invalid_user":', b"false" if user_valid else b"true")
        opened = True
    if opened:
        parts.append(b"}")
    for name in _OPTIONAL_FIELDS:
        value = get(name)
        if value is not None:
            parts += (b',"', name.encode(), b'":', _dumps(value))
    if not from_file:
        parts += (b',"position":', _dumps(get("position", 0)))


def _message(raw_value: Any, program: Any, pid: Any) -> str:
    """``ecs._message`` on the fields themselves (no body dict to look them up in)."""
    raw = str(raw_value)
    if program:
        marker = f"{program}[{pid}]: " if pid is not None else f"{program}: "
        _, found, rest = raw.partition(marker)
        if found:
            return rest
    return raw


__all__ = ["event_lines"]
