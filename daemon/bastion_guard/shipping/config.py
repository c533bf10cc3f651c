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

import re
from dataclasses import dataclass
from typing import Any

from bastion_guard.rules.fields import Fields
from bastion_guard.shipping.factory import SINK_TYPES
from bastion_guard.shipping.spool import Bounds, Policy

_SIZE = re.compile(r"^\s*(\d+)\s*([KMG]i?B|B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "kib": 1024, "mib": 1024**2, "gib": 1024**3}
_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


@dataclass(frozen=True, slots=True)
class SpoolConfig:
    """The spool's bounds and the workers' back-off."""

    max_bytes: int = 256 * 1024**2
    max_records: int = 0
    policy: Policy = Policy.DROP_OLDEST
    backoff_initial_secs: float = 1.0
    backoff_max_secs: float = 60.0

    @property
    def bounds(self) -> Bounds:
        """The spool's :class:`Bounds`."""
        return Bounds(self.max_bytes, self.max_records, self.policy)


@dataclass(frozen=True, slots=True)
class SinkConfig:
    """One configured sink: its type, unique name and the type's own validated configuration."""

    type: str
    name: str
    options: Any


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
