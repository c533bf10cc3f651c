"""Bulk NDJSON for parsed lines, written straight from the spooled :class:`Event` with per-kind templates.

:func:`bastion_guard.shipping.ecs.to_document` is the reference: it builds each document as nested dicts,
which orjson then serialises, from a record whose body is another dict built from the event. Most of a
parsed line's document never changes (``ecs``, ``data_stream``, ``observer``, the kind's
``event.category/type/action``), and building ~10 small dicts per shipped line cost more than anything else
the worker does. Here the static parts are serialised once per (namespace, bastion) and per kind, and only
the event's variable fields are encoded, each with ``orjson.dumps`` (so strings are escaped exactly as the
reference's serialiser escapes them).

The bytes are the reference's, key for key and in the same order: ``tests/unit/test_ecs_ndjson.py`` parses
them back and compares them with ``to_document`` over every kind and the awkward cases. Records that are
not parsed lines, and parsed lines that come back as records (dead letters replayed), take the reference
path (:func:`bastion_guard.shipping.elasticsearch.bulk_body`).
"""

from __future__ import annotations

import functools
import operator
from typing import Any

import orjson

from bastion_guard.events import Event, Kind, Outcome
from bastion_guard.shipping import ecs
from bastion_guard.shipping.records import event_id, iso_time

_dumps = orjson.dumps
_SSH_NAMES = ("method", "key_type", "fingerprint", "cert_id", "cert_serial")
_SSH_FIELDS = tuple(name.encode() for name in _SSH_NAMES)
_ssh_values = operator.attrgetter(*_SSH_NAMES)
# The reference's outcomes ("info" carries no event.outcome), as the bytes they add to ``event``.
_OUTCOME_FIELD = {Outcome(name): b',"outcome":' + _dumps(value) for name, value in ecs._OUTCOMES.items()}


@functools.lru_cache(maxsize=64)
def _shape(kind: Kind) -> bytes:
    """``"kind":"event","category":[...],"type":[...],"action":...`` of one event kind (unknown ones too)."""
    category, types, action = ecs._EVENT_SHAPES.get(kind.value, ecs._UNKNOWN_SHAPE)  # the reference's table
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


@functools.cache
def native_table() -> bytes:
    """The per-kind shapes and per-outcome fields for the native path (``native/src/ecs.rs``, ``Table``):
    the same pieces :func:`event_lines` uses, so the document layout has one definition, here."""
    pieces = [str(len(Kind)).encode()]
    for kind in Kind:
        pieces += (kind.value.encode(), _shape(kind))
    for outcome in Outcome:
        pieces += (outcome.value.encode(), _OUTCOME_FIELD.get(outcome, b""))
    return b"\0".join(pieces)


@functools.lru_cache(maxsize=16)
def native_frame(namespace: str, bastion: str) -> bytes:
    """The static pieces of one (namespace, bastion) for the native path (``Frame``): :func:`_templates`'."""
    return b"\0".join(_templates(namespace, bastion))


def event_lines(event: Event, bastion: str, namespace: str) -> bytes:
    """The ``create`` action and the ECS document of one parsed line, as two NDJSON lines.

    Exactly ``orjson.dumps`` of ``{"create": {"_index": data_stream(...), "_id": id}}`` and of
    ``to_document(event_record(event, bastion), namespace)``, each followed by a newline."""
    action, stream_head, stream_tail, host_start, observer = _templates(namespace, bastion)
    rid = _dumps(event_id(event, bastion))
    kind = event.kind
    program, pid, raw = event.program, event.pid, event.raw
    parts: list[bytes] = [
        action, rid, b'}}\n{"@timestamp":', _dumps(iso_time(event.epoch)), b",", stream_head, rid, stream_tail,
        _shape(kind), b',"original":', _dumps(raw),
    ]
    if program:
        parts += (b',"provider":', _dumps(program))
    parts += (_OUTCOME_FIELD.get(event.outcome, b""), b"},", host_start)
    host = event.host
    if host:
        parts += (b',"hostname":', _dumps(host))
    parts += (b"}", observer, b',"message":', _dumps(_message(raw, program, pid)))
    if program:
        parts += (b',"process":{"name":', _dumps(program))
        if pid is not None:
            parts += (b',"pid":', _dumps(pid))
        parts.append(b"}")
    source = event.source
    from_file = source.startswith("file:")
    if from_file:
        parts += (b',"log":{"file":{"path":', _dumps(source[5:]), b'},"offset":', _dumps(event.position), b"}")
    _source_and_user(parts, event.ip, event.port, event.client_host, event.user)
    parts += (b',"bastion":{"event":{"kind":', _dumps(kind), b'},"source":', _dumps(source))
    _bastion_tail(parts, event, from_file)
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


def _bastion_tail(parts: list[bytes], event: Event, from_file: bool) -> None:
    """``bastion.ssh``, the optional fields and ``position`` (see ``ecs._bastion_fields``)."""
    opened = False
    for name, value in zip(_SSH_FIELDS, _ssh_values(event), strict=True):
        if value is not None:
            parts += (b',"' if opened else b',"ssh":{"', name, b'":', _dumps(value))
            opened = True
    user_valid = event.user_valid
    if user_valid is not None:
        parts += (b',"invalid_user":' if opened else b',"ssh":{"invalid_user":', b"false" if user_valid else b"true")
        opened = True
    if opened:
        parts.append(b"}")
    if event.attributed_by is not None:
        parts += (b',"attributed_by":', _dumps(event.attributed_by))
    if event.detail is not None:
        parts += (b',"detail":', _dumps(event.detail))
    if event.repeat != 1:  # event_record leaves the usual 1 out
        parts += (b',"repeat":', _dumps(event.repeat))
    if not from_file:
        parts += (b',"position":', _dumps(event.position))


def _message(raw_value: Any, program: Any, pid: Any) -> str:
    """``ecs._message`` on the fields themselves (no body dict to look them up in)."""
    raw = str(raw_value)
    if program:
        marker = f"{program}[{pid}]: " if pid is not None else f"{program}: "
        _, found, rest = raw.partition(marker)
        if found:
            return rest
    return raw


__all__ = ["event_lines", "native_frame", "native_table"]
