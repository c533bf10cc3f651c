"""The ``spool:`` and ``sinks:`` sections of ``bastiond.yaml``::

    spool:
      max_bytes: 256MiB          # bytes (or 64MB, 1GiB...); 0 = no byte limit
      max_records: 0             # 0 = no record limit
      policy: drop_oldest        # or drop_newest; either way drops are counted, detection never waits
      backoff_initial_secs: 1    # first retry delay ceiling (full jitter), doubling per failure...
      backoff_max_secs: 60       # ...up to this
    sinks:
      - {type: elasticsearch, name: es, hosts: [https://es.example.com:9200], api_key_file: /etc/...}

No ``sinks`` means no spool at all: nothing is written and no thread runs. Each entry's ``type`` picks the
validator in :data:`~bastion_guard.shipping.factory.SINK_TYPES`; ``name`` (default: the type) labels its
metrics and keys its spool cursor, so it must be unique and stable.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any

from bastion_guard.config.fielddoc import doc, internal
from bastion_guard.rules.fields import Fields
from bastion_guard.shipping.factory import SINK_TYPES
from bastion_guard.shipping.spool import Bounds, Policy

_SIZE = re.compile(r"^\s*(\d+)\s*([KMG]i?B|B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "kib": 1024, "mib": 1024**2, "gib": 1024**3}
_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


@dataclass(frozen=True, slots=True)
class SpoolConfig:
    """The spool's bounds and the workers' back-off."""

    max_bytes: int = field(default=256 * 1024**2, metadata=doc(
        "spool.max_bytes", "How much the spool (`state_dir/spool.db`) may hold while a sink is down: bytes, or "
        "with a unit (`64MB`, `1GiB`); `0` = no byte limit. When full, `spool.policy` decides what is dropped.",
        "spool: {max_bytes: 1GiB}", default="256MiB"))
    max_records: int = field(default=0, metadata=doc(
        "spool.max_records", "At most this many records in the spool; `0` = no record limit.",
        "spool: {max_records: 1000000}", default="0 (no limit)"))
    policy: Policy = field(default=Policy.DROP_OLDEST, metadata=doc(
        "spool.policy", "What a full spool drops: `drop_oldest` or `drop_newest`. Drops are counted "
        "(`bastion_spool_dropped_total`); detection and bans never wait for a sink.",
        "spool: {policy: drop_newest}"))
    backoff_initial_secs: float = field(default=1.0, metadata=doc(
        "spool.backoff_initial_secs", "Ceiling of the first retry delay after a failed delivery (full jitter); "
        "it doubles per failure up to `spool.backoff_max_secs`.", "spool: {backoff_initial_secs: 5}"))
    backoff_max_secs: float = field(default=60.0, metadata=doc(
        "spool.backoff_max_secs", "The longest retry delay (at least `spool.backoff_initial_secs`).",
        "spool: {backoff_max_secs: 300}"))

    @property
    def bounds(self) -> Bounds:
        """The spool's :class:`Bounds`."""
        return Bounds(self.max_bytes, self.max_records, self.policy)


@dataclass(frozen=True, slots=True)
class SinkConfig:
    """One configured sink: its type, unique name and the type's own validated configuration."""

    type: str = field(metadata=doc(
        "sinks[].type", f"What the sink speaks: {', '.join(f'`{kind}`' for kind in SINK_TYPES)}; each type's "
        "own keys are listed in its section below.",
        "sinks: [{type: gelf, transport: udp, host: graylog.example.com}]", default="required"))
    name: str = field(metadata=doc(
        "sinks[].name", "Labels the sink's metrics and keys its spool cursor: unique, and kept stable (a renamed "
        "sink is a new sink: it starts with whatever is waiting in the spool).",
        "sinks: [{type: elasticsearch, name: es-main, hosts: [https://es.example.com:9200]}]",
        default="the type"))
    options: Any = field(metadata=internal("the type's own keys, documented per sink type"))


def parse_spool(fields: Fields) -> SpoolConfig:
    """The ``spool:`` section (defaults if absent)."""
    section = fields.nested("spool")
    defaults = SpoolConfig()
    if section is None or not section.ok:
        return defaults
    max_bytes = _size(section, "max_bytes", defaults.max_bytes)
    max_records = section.count("max_records", 0, minimum=0)
    policy = Policy(section.choice("policy", tuple(Policy), defaults.policy.value))
    initial = section.number("backoff_initial_secs", defaults.backoff_initial_secs, minimum=0.01)
    ceiling = section.number("backoff_max_secs", defaults.backoff_max_secs, minimum=0.01)
    if ceiling < initial:
        section.problem("backoff_max_secs", "must be at least backoff_initial_secs")
        ceiling = initial
    section.reject_unknown()
    return SpoolConfig(max_bytes, max_records, policy, initial, ceiling)


def parse_sinks(fields: Fields) -> tuple[SinkConfig, ...]:
    """The ``sinks:`` list; every entry validated by its type's parser."""
    raw = fields.raw("sinks")
    if not fields.has("sinks") or raw is None:
        return ()
    if not isinstance(raw, list):
        fields.problem("sinks", "must be a list of {type: ..., name: ..., ...}")
        return ()
    sinks: list[SinkConfig] = []
    names: set[str] = set()
    for index, item in enumerate(raw):
        entry = fields.child(item, f"sinks[{index}]", fields.where("sinks"))
        if not entry.ok:
            continue
        if entry.has("type"):
            kind = entry.choice("type", tuple(SINK_TYPES), "")
        else:
            kind = ""
            entry.problem("type", f"is required (one of {', '.join(SINK_TYPES)})")
            _misspelled_type(entry, item)
        name = entry.get("name", str, kind)
        if name and not _NAME.match(name):
            entry.problem("name", "must be 1-64 letters, digits, '_', '.', ':' or '-'")
        elif name in names:
            entry.problem("name", f"{name!r} is used by another sink (names key metrics and the spool)")
        names.add(name)
        if kind not in SINK_TYPES:
            continue
        parse, _build = SINK_TYPES[kind]
        sinks.append(SinkConfig(kind, name, parse(entry)))
    return tuple(sinks)


def _misspelled_type(entry: Fields, item: object) -> None:
    """Report a key that looks like ``type`` as unknown: without a type the entry's other keys cannot be
    checked (they depend on it), but ``tpye:`` is most likely why the type is missing, and says so."""
    for key in item if isinstance(item, dict) else ():
        if isinstance(key, str) and key != "type" and difflib.get_close_matches(key, ("type",), cutoff=0.6):
            entry.problem(key, "unknown key")


def _size(section: Fields, key: str, default: int) -> int:
    value = section.raw(key)
    if not section.has(key):
        return default
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = _SIZE.match(value) if isinstance(value, str) else None
    if match is None:
        section.problem(key, "must be a size in bytes (1048576, 64MB, 256MiB; 0 = no limit)")
        return default
    return int(match.group(1)) * _UNITS[(match.group(2) or "").lower()]
