"""The sink registry: ``type:`` in a ``sinks:`` entry -> how to validate its configuration and build it.

``SINK_TYPES[type] = (parse_config, build)``:

- ``parse_config(section: Fields) -> config`` validates one YAML entry into a frozen dataclass, reporting
  problems through ``section`` (file:line:column and key). ``type`` and ``name`` are read by the caller
  (``runtime/config.py``); ``parse_config`` reads the rest and ends with ``section.reject_unknown()``.
  It must not connect anywhere or read secrets: ``bastiond --check-config`` runs it.
- ``build(config, name: str) -> Sink`` makes the sink when the daemon starts; it may read secret files
  and raise a :class:`~bastion_guard.errors.BastionError` with a clear message.

A dict literal, so the known types are visible to grep and mypy; the heavy client libraries are imported
only when a sink of that type is built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bastion_guard.rules.fields import Fields
from bastion_guard.shipping import gelf_sink
from bastion_guard.shipping.base import Sink
from bastion_guard.shipping.elasticsearch_config import ElasticsearchConfig, parse_elasticsearch
from bastion_guard.shipping.webhook import config as webhook_config
from bastion_guard.shipping.webhook import sink as webhook_sink

SinkType = tuple[Callable[[Fields], Any], Callable[[Any, str], Sink]]


def _build_elasticsearch(config: ElasticsearchConfig, name: str) -> Sink:
    from bastion_guard.shipping.elasticsearch import build_elasticsearch  # noqa: PLC0415 (keeps the client lazy)

    return build_elasticsearch(config, name)


SINK_TYPES: dict[str, SinkType] = {
    "elasticsearch": (parse_elasticsearch, _build_elasticsearch),
    "gelf": (gelf_sink.parse_config, gelf_sink.build),
    "webhook": (webhook_config.parse_config, webhook_sink.build),
}
