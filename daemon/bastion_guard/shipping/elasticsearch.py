"""The Elasticsearch sink: ECS documents into data streams with bulk ``create`` and per-item results.

Client version: the official ``elasticsearch`` client **8.x** (``>=8.13,<9``, see pyproject.toml). It sends
``Accept``/``Content-Type: application/vnd.elasticsearch+json; compatible-with=8``; 8.x servers take that
natively and 9.x servers through REST API compatibility, while the 9.x client's ``compatible-with=9`` is
refused by 8.x servers. So the 8.x client is the one line that works with both.

What it does per batch (the worker owns retries):

- the index templates and the ILM policy are installed once, on first use (``setup: false`` leaves that
  to an administrator, so the writer needs only ``create_doc`` and ``auto_configure``);
- one ``_bulk`` request of ``create`` actions with ``_id`` = record id: a document sent twice (after a
  crash, a retry, a dead-letter replay) comes back 409 and counts as delivered;
- the answer is filtered to each item's status and error (``filter_path``, see ``BULK_FILTER``);
- per item: 2xx and 409 delivered; 429 and 5xx retry; any other 4xx (a mapping or parsing error) rejected,
  to the dead-letter store; a failure of the whole request (connection refused, timeout, 429/5xx, bad
  credentials) is a retry for every record: nothing is dead-lettered for a problem of the cluster.

The client's own retries are off (``max_retries=0``): it would sleep inside the worker, unseen and
uninterruptible. Secrets go from :class:`~bastion_guard.shipping.secrets.Secret` straight to the client and
are never formatted into a message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import orjson
from elastic_transport import TransportError
from elasticsearch import ApiError, Elasticsearch

from bastion_guard.shipping import ecs
from bastion_guard.shipping.base import Delivery, Health, Result
from bastion_guard.shipping.ecs_ndjson import event_lines
from bastion_guard.shipping.elasticsearch_config import ElasticsearchConfig
from bastion_guard.shipping.records import Record
from bastion_guard.shipping.secrets import is_loopback_host, redact_url
from bastion_guard.shipping.spool import Queued
from bastion_guard.shipping.spooled_batch import SpooledBatch

log = logging.getLogger("bastiond.shipping")
# The transport logs every request at INFO ("putting on N second timeout" per retry while the cluster is
# down): the worker already reports failures once per outage and counts every attempt in metrics.
logging.getLogger("elastic_transport").setLevel(logging.WARNING)

ILM_POLICY = "bastion-logs"
TEMPLATE_PRIORITY = 501  # above the built-in logs-*-* template (priority 100), as Elastic advises for overrides
_RETRY_STATUSES = frozenset({408, 429})
# What the sink reads of a bulk answer (Elasticsearch's response filtering): a clean item shrinks from
# ~250 bytes (index, id, version, shards, sequence numbers) to ``{"create":{"status":201}}``, and parsing
# 2000 of those was most of the client's time. Every item keeps its status, so none is dropped from the
# array and the answer's items still line up with the request's (``items.*.error`` alone would drop them).
BULK_FILTER = ("errors", "items.*.status", "items.*.error.type", "items.*.error.reason")
_DELIVERED = Delivery(Result.DELIVERED)
_MAPPINGS: dict[str, Any] = {
    "dynamic_templates": [{"strings_as_keyword": {"match_mapping_type": "string",
                                                   "mapping": {"type": "keyword", "ignore_above": 1024}}}],
    "properties": {
        "@timestamp": {"type": "date"},
        "message": {"type": "match_only_text"},
        "event": {"properties": {"original": {"type": "keyword", "index": False, "doc_values": False}}},
        "source": {"properties": {"ip": {"type": "ip"}, "port": {"type": "long"}}},
        "related": {"properties": {"ip": {"type": "ip"}}},
        "process": {"properties": {"pid": {"type": "long"}}},
        "log": {"properties": {"offset": {"type": "long"}}},
    },
}


def _client(config: ElasticsearchConfig) -> Elasticsearch:
    options: dict[str, Any] = {
        "request_timeout": config.timeout_secs, "max_retries": 0, "retry_on_timeout": False,
        "verify_certs": config.verify_certs,
    }
    if config.ca_file is not None:
        options["ca_certs"] = str(config.ca_file)
    if config.api_key is not None:
        options["api_key"] = config.api_key.load().reveal()
    elif config.username is not None and config.password is not None:
        options["basic_auth"] = (config.username, config.password.load().reveal())
    return Elasticsearch(list(config.hosts), **options)


class ElasticsearchSink:
    """A :class:`~bastion_guard.shipping.base.Sink` for one cluster."""

    def __init__(self, config: ElasticsearchConfig, name: str, client: Elasticsearch | None = None) -> None:
        self.name = name
        self._config = config
        self._client = client if client is not None else _client(config)
        self._set_up = not config.setup

    def __repr__(self) -> str:
        return f"ElasticsearchSink({self.name!r}, hosts={list(self._config.hosts)!r})"

    def deliver(self, records: Sequence[Record]) -> Sequence[Delivery]:
        """One bulk request; one :class:`Delivery` per record, in order."""
        return self._bulk(bulk_body(records, self._config.namespace), len(records))

    def deliver_queued(self, items: Sequence[Queued]) -> Sequence[Delivery]:
        """:meth:`deliver` for what the worker read from the spool: parsed lines are encoded from their
        spooled batch, a run of consecutive events at a time, by the native path where there is one
        (:meth:`~bastion_guard.shipping.spooled_batch.SpooledBatch.ecs_lines`), else from their events
        (:func:`~bastion_guard.shipping.ecs_ndjson.event_lines`), with no record built for them."""
        return self._bulk(queued_body(items, self._config.namespace), len(items))

    def _bulk(self, body: bytes, count: int) -> Sequence[Delivery]:
        """Send one ``_bulk`` body of ``count`` documents; one :class:`Delivery` per document, in order."""
        try:
            if not self._set_up:
                self._setup()
            response = self._client.bulk(operations=body, filter_path=BULK_FILTER)  # type: ignore[arg-type]  # NDJSON bytes pass through
        except ApiError as error:
            return [_whole_request_failed(error)] * count
        except TransportError as error:
            return [Delivery(Result.RETRY, f"cannot reach Elasticsearch: {type(error).__name__}: {error.message}")
                    ] * count
        items = response.body.get("items", [])
        if len(items) != count:
            return [Delivery(Result.RETRY, f"bulk answered {len(items)} items for {count}")] * count
        if response.body.get("errors") is False:  # every item created: no need to look at each one
            return [_DELIVERED] * count
        return [_item_delivery(item) for item in items]

    def health(self) -> Health:
        """``GET /``: reachable, authenticated and really Elasticsearch (the client checks the product header)."""
        try:
            info = self._client.options(request_timeout=min(5.0, self._config.timeout_secs)).info()
        except ApiError as error:
            return Health(False, f"Elasticsearch answered {error.meta.status}: {_error_text(error)}")
        except TransportError as error:
            return Health(False, f"cannot reach Elasticsearch: {type(error).__name__}")
        version = info.body.get("version", {}).get("number", "?")
        return Health(True, f"Elasticsearch {version} ({info.body.get('cluster_name', '?')})")

    def close(self) -> None:
        """Close the client's connections."""
        self._client.close()

    def _setup(self) -> None:
        """Install the ILM policy and one index template per data stream (idempotent PUTs). Without the
        privilege to (403), write anyway: the cluster's built-in logs-*-* template still makes data streams."""
        try:
            self._install()
        except ApiError as error:
            if error.meta.status != 403:
                raise
            log.warning("sink %s: no privilege to install index templates and ILM (%s); writing without them "
                        "(set setup: false to skip this)", self.name, _error_text(error))
            self._set_up = True

    def _install(self) -> None:
        client = self._client
        delete = ({"delete": {"min_age": f"{self._config.retention_days}d", "actions": {"delete": {}}}}
                  if self._config.retention_days else {})
        client.ilm.put_lifecycle(name=ILM_POLICY, policy={"phases": {
            "hot": {"actions": {"rollover": {"max_primary_shard_size": "50gb", "max_age": "30d"}}}, **delete,
        }})
        for dataset in (ecs.AUTH_DATASET, ecs.AUDIT_DATASET):
            client.indices.put_index_template(
                name=f"logs-{dataset}", index_patterns=[f"logs-{dataset}-*"], data_stream={},
                priority=TEMPLATE_PRIORITY, composed_of=["logs@mappings", "logs@settings", f"logs-{dataset}@custom"],
                ignore_missing_component_templates=["logs@mappings", "logs@settings", f"logs-{dataset}@custom"],
                template={"settings": {"index.lifecycle.name": ILM_POLICY}, "mappings": _MAPPINGS},
                meta={"managed_by": "bastiond", "description": "bastion-guard shipped events (ECS)"},
            )
        self._set_up = True
        log.info("sink %s: index templates and ILM policy %s installed", self.name, ILM_POLICY)


def bulk_body(records: Sequence[Record], namespace: str) -> bytes:
    """The whole ``_bulk`` request body for ``records``, as one bytes object (the client sends it as it is)."""
    dumps = orjson.dumps
    parts: list[bytes] = []
    for record in records:
        parts += _record_lines(record, namespace, dumps)
    return b"".join(parts)


def queued_body(items: Sequence[Queued], namespace: str) -> bytes:
    """The ``_bulk`` body for ``items`` in order: runs of consecutive events of one spooled batch in one
    native call each (a retry's leftovers make shorter runs), everything else line by line in Python."""
    parts: list[bytes] = []
    batch, first, stop = None, 0, 0  # the run being collected: events first..stop-1 of batch
    for item in items:
        if item.batch is not None and item.batch is batch and item.index == stop:
            stop += 1
            continue
        if batch is not None:
            _run_lines(parts, batch, first, stop, namespace)
            batch = None
        if item.batch is not None:
            batch, first, stop = item.batch, item.index, item.index + 1
        else:
            parts.append(_item_lines(item, namespace))
    if batch is not None:
        _run_lines(parts, batch, first, stop, namespace)
    return b"".join(parts)


def _run_lines(parts: list[bytes], batch: SpooledBatch, first: int, stop: int, namespace: str) -> None:
    """Events ``first`` to ``stop - 1`` of ``batch``: natively if it can, else each in Python."""
    native = batch.ecs_lines(first, stop, namespace)
    if native is not None:
        parts.append(native)
        return
    events, bastion = batch.events(), batch.bastion
    parts += (event_lines(events[index], bastion, namespace) for index in range(first, stop))


def _item_lines(item: Queued, namespace: str) -> bytes:
    """A queued event's lines (from its event), or a record's (the reference path)."""
    event = item.event
    if event is not None:
        return event_lines(event, item.bastion, namespace)
    return b"".join(_record_lines(item.record, namespace, orjson.dumps))


def _record_lines(record: Record, namespace: str, dumps: Callable[[Any], bytes]) -> tuple[bytes, ...]:
    """One record's ``create`` action and ECS document, newline-terminated (the reference path)."""
    return (dumps({"create": {"_index": ecs.data_stream(record, namespace), "_id": record.id}}), b"\n",
            dumps(ecs.to_document(record, namespace)), b"\n")


def _item_delivery(item: dict[str, Any]) -> Delivery:
    result: dict[str, Any] = next(iter(item.values()), {})
    status = int(result.get("status", 0))
    if 200 <= status < 300 or status == 409:  # 409 on create: the document is there already
        return Delivery(Result.DELIVERED)
    error = result.get("error") or {}
    reason = f"{status} {error.get('type', '')}: {error.get('reason', '')}" if isinstance(error, dict) else str(error)
    if status in _RETRY_STATUSES or status >= 500:
        return Delivery(Result.RETRY, reason)
    return Delivery(Result.REJECTED, reason)


def _whole_request_failed(error: ApiError) -> Delivery:
    status = error.meta.status
    reason = f"Elasticsearch answered {status}: {_error_text(error)}"
    retry_after = error.meta.headers.get("retry-after")
    seconds = float(retry_after) if retry_after and retry_after.isdigit() else None
    # A whole-request 4xx (bad credentials, missing privileges) is the cluster's or the operator's problem,
    # not the records': keep them in the spool until it is fixed.
    return Delivery(Result.RETRY, reason, seconds)


def _error_text(error: ApiError) -> str:
    body = error.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return f"{body['error'].get('type', '')}: {body['error'].get('reason', '')}"
    return str(error.message)


def build_elasticsearch(config: ElasticsearchConfig, name: str) -> ElasticsearchSink:
    """The factory's ``build`` for ``type: elasticsearch`` (reads the secrets now)."""
    if config.api_key is not None or config.password is not None:
        for host in config.hosts:
            parts = urlsplit(host)
            if parts.scheme == "http" and not is_loopback_host(parts.hostname or ""):
                # Allowed (a private demo network, a cluster behind a TLS-terminating sidecar) but never quiet.
                log.warning("sink %s sends credentials to %s over plain http: use https:// and ca_file", name,
                            redact_url(host))
    return ElasticsearchSink(config, name)

