"""An Elasticsearch protocol test double: a local HTTP server speaking enough of the real API for the
official client, enforcing what a real cluster enforces for the calls bastiond makes.

It is not Elasticsearch (that cannot run here); it is the part of its protocol our sink depends on:

- every response carries ``X-Elastic-Product: Elasticsearch`` (the client refuses a server without it) and
  the vendored media type; requests must send the REST-compatibility media type (``application/vnd.
  elasticsearch+json; compatible-with=N``) with N the server's major or the one before, as a real server
  demands: an 8.x double refuses the 9.x client's ``compatible-with=9``;
- TLS when given a server context (the client then verifies it against a CA file);
- authentication: an API key (``Authorization: ApiKey ...``) or basic auth, else 401 ``security_exception``;
- ``GET /`` (cluster info), ``PUT _ilm/policy/<name>``, ``PUT _index_template/<name>`` (validated shape),
  ``GET <index>/_count``;
- ``POST _bulk``: NDJSON action/source pairs; data streams (``logs-*``) take only ``create``; a ``create``
  of an existing ``_id`` is 409 ``version_conflict_engine_exception``; ``@timestamp`` is required; ``source.ip``
  and ``related.ip`` must be IP addresses (``mapper_parsing_exception`` otherwise), as the template maps them;
  per-item statuses with ``errors: true`` when any failed;
- ``filter_path`` on any request (:func:`filter_response`), as Elasticsearch's response filtering does it:
  comma-separated dotted paths, ``*`` within a name, ``**`` for any depth; objects and array elements left
  with nothing are dropped; error responses are not filtered. Exclusions (``-path``) are refused (400)
  rather than imitated, since nothing here uses them.

Switches for failure tests: :meth:`go_down` / :meth:`come_up` (connections refused, open keep-alive
connections cut), :meth:`throttle` (the next N items answer 429, or the whole request with Retry-After),
:meth:`reject_field` (items carrying a field answer 400 ``mapper_parsing_exception``).
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import re
import socket
import ssl
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import orjson

_MEDIA = "application/vnd.elasticsearch+json;compatible-with={major}"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], double: ElasticsearchDouble) -> None:
        self.double = double
        self.connections: set[socket.socket] = set()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        self.connections.add(request)
        super().process_request(request, client_address)

    def cut_connections(self) -> None:
        for connection in list(self.connections):
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self.connections.clear()


class ElasticsearchDouble:
    """The double's state and switches. ``start()`` it, point the client at :attr:`url`, ``stop()`` it."""

    def __init__(self, *, api_key: str | None = None, basic: tuple[str, str] | None = None,
                 major: int = 8, tls: ssl.SSLContext | None = None, manage: bool = True) -> None:
        self.tls = tls
        self.manage = manage  # False: the credentials lack manage_ilm / manage_index_templates (403)
        self.api_key = api_key
        self.basic = basic
        self.major = major
        self.documents: dict[str, dict[str, dict[str, Any]]] = {}
        self.templates: dict[str, dict[str, Any]] = {}
        self.policies: dict[str, dict[str, Any]] = {}
        self.statuses: Counter[int] = Counter()  # bulk item statuses answered
        self.requests: Counter[str] = Counter()
        self.lock = threading.Lock()
        self._throttle_items = 0
        self._throttle_requests = 0
        self._retry_after: int | None = None
        self._rejected_fields: set[str] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """The base URL."""
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def up(self) -> bool:
        """Whether it is listening."""
        return self._server is not None

    # --- life cycle and switches ---------------------------------------------------------------------------

    def start(self) -> ElasticsearchDouble:
        """Listen (on a free port the first time, on the same port after :meth:`go_down`)."""
        self._server = _Server(("127.0.0.1", self.port), self)
        if self.tls is not None:
            self._server.socket = self.tls.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def go_down(self) -> None:
        """Stop listening and cut open connections: clients get connection refused / reset."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            server.cut_connections()
        if self._thread is not None:
            self._thread.join()

    def come_up(self) -> None:
        """Listen again on the same port, with the same documents."""
        self.start()

    stop = go_down

    def throttle(self, items: int = 0, requests: int = 0, retry_after: int | None = None) -> None:
        """The next ``items`` bulk items answer 429; the next ``requests`` bulk requests answer 429 whole."""
        with self.lock:
            self._throttle_items = items
            self._throttle_requests = requests
            self._retry_after = retry_after

    def reject_field(self, dotted: str) -> None:
        """Documents carrying ``dotted`` (e.g. ``bastion.detail``) fail with 400 mapper_parsing_exception."""
        with self.lock:
            self._rejected_fields.add(dotted)

    def accept_all_fields(self) -> None:
        """Undo :meth:`reject_field`."""
        with self.lock:
            self._rejected_fields.clear()

    def ids(self, index: str) -> set[str]:
        """The ``_id`` s stored in ``index``."""
        with self.lock:
            return set(self.documents.get(index, {}))

    # --- the protocol ------------------------------------------------------------------------------------

    def authorised(self, header: str | None) -> bool:
        """Whether the Authorization header carries the configured credentials (anything, if none)."""
        if self.api_key is None and self.basic is None:
            return True
        if header is None:
            return False
        if self.api_key is not None and header == f"ApiKey {self.api_key}":
            return True
        if self.basic is not None:
            token = base64.b64encode(f"{self.basic[0]}:{self.basic[1]}".encode()).decode()
            return header == f"Basic {token}"
        return False

    def bulk(self, body: bytes) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Answer one ``_bulk`` request."""
        with self.lock:
            if self._throttle_requests:
                self._throttle_requests -= 1
                headers = {} if self._retry_after is None else {"Retry-After": str(self._retry_after)}
                return 429, _error(429, "es_rejected_execution_exception", "rejected execution (queue full)"), headers
        lines = [line for line in body.split(b"\n") if line.strip()]
        if len(lines) % 2:
            return 400, _error(400, "illegal_argument_exception", "The bulk request must be terminated by a newline"
                               " and have a source for each create"), {}
        items = []
        for action_line, source_line in zip(lines[::2], lines[1::2], strict=True):
            try:
                action = orjson.loads(action_line)
                source = orjson.loads(source_line)
            except orjson.JSONDecodeError:
                return 400, _error(400, "x_content_parse_exception", "failed to parse bulk line"), {}
            items.append(self._item(action, source))
        errors = any(next(iter(item.values()))["status"] >= 300 for item in items)
        return 200, {"took": 1, "errors": errors, "items": items}, {}

    def _item(self, action: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
        (op, meta), = action.items()
        index = meta.get("_index", "")
        doc_id = meta.get("_id") or f"auto-{sum(len(docs) for docs in self.documents.values())}"
        result = {"_index": index, "_id": doc_id}
        with self.lock:
            if self._throttle_items:
                self._throttle_items -= 1
                return self._answer(op, result, 429, "es_rejected_execution_exception", "rejected execution")
            if index.startswith("logs-") and op != "create":
                return self._answer(op, result, 400, "illegal_argument_exception",
                                    f"only write ops with an op_type of create are allowed in data streams ({op})")
            if "@timestamp" not in source:
                return self._answer(op, result, 400, "mapper_parsing_exception",
                                    "data stream timestamp field [@timestamp] is missing")
            problem = _mapping_problem(source, self._rejected_fields)
            if problem is not None:
                return self._answer(op, result, 400, "mapper_parsing_exception", problem)
            stored = self.documents.setdefault(index, {})
            if doc_id in stored:
                return self._answer(op, result, 409, "version_conflict_engine_exception",
                                    f"[{doc_id}]: version conflict, document already exists (current version [1])")
            stored[doc_id] = source
            self.statuses[201] += 1
            return {op: {**result, "_version": 1, "result": "created", "status": 201}}

    def _answer(self, op: str, result: dict[str, Any], status: int, kind: str, reason: str) -> dict[str, Any]:
        self.statuses[status] += 1
        return {op: {**result, "status": status, "error": {"type": kind, "reason": reason}}}


def _mapping_problem(source: dict[str, Any], rejected: set[str]) -> str | None:
    for dotted in rejected:
        node: Any = source
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            return f"failed to parse field [{dotted}]: rejected by the test switch"
    for dotted in ("source.ip",):
        value = source.get("source", {}).get("ip")
        if value is not None and not _is_ip(value):
            return f"failed to parse field [{dotted}] of type [ip]: '{value}' is not an IP string literal."
    for value in source.get("related", {}).get("ip", []):
        if not _is_ip(value):
            return f"failed to parse field [related.ip] of type [ip]: '{value}' is not an IP string literal."
    return None


def _is_ip(value: object) -> bool:
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        return False
    return True


_NOTHING: Any = object()  # what a filter leaves of a value none of its paths reach


def filter_paths(query: str) -> list[list[str]] | None:
    """The ``filter_path`` of a query string as lists of path segments (None: no filtering). ValueError for
    an exclusion (``-path``), which this double does not implement."""
    values = parse_qs(query).get("filter_path")
    if not values:
        return None
    paths = [path.strip() for value in values for path in value.split(",") if path.strip()]
    if any(path.startswith("-") for path in paths):
        raise ValueError("filter_path exclusions are not implemented by this double")
    return [path.split(".") for path in paths]


def _segment_matches(pattern: str, name: str) -> bool:
    """``*`` matches any run of characters in one name (Elasticsearch's simple wildcard match)."""
    return re.fullmatch(".*".join(map(re.escape, pattern.split("*"))), name) is not None


def _after(path: list[str], name: str) -> list[list[str]]:
    """What is left of ``path`` under the field ``name`` (several ways when ``**`` spans any depth)."""
    if not path:
        return []
    head = path[0]
    if head == "**":
        return [path, *_after(path[1:], name)]  # ``**`` takes this level and stays, or takes none
    return [path[1:]] if _segment_matches(head, name) else []


def filter_response(value: Any, paths: list[list[str]]) -> Any:
    """``value`` with only what ``paths`` reach: a path used up keeps the whole value under it; objects
    and array elements left empty are dropped (``_NOTHING`` when nothing is left of ``value``)."""
    if any(not path or path == ["**"] for path in paths):
        return value
    if isinstance(value, dict):
        kept = {}
        for name, child in value.items():
            rest = [after for path in paths for after in _after(path, name)]
            if rest and (child_kept := filter_response(child, rest)) is not _NOTHING:
                kept[name] = child_kept
        return kept if kept else _NOTHING
    if isinstance(value, list):  # a path goes through an array into each element
        elements = [kept for kept in (filter_response(element, paths) for element in value) if kept is not _NOTHING]
        return elements if elements else _NOTHING
    return _NOTHING


def _error(status: int, kind: str, reason: str) -> dict[str, Any]:
    return {"error": {"root_cause": [{"type": kind, "reason": reason}], "type": kind, "reason": reason},
            "status": status}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests assert on state, not on access logs."""

    def setup(self) -> None:
        """No Nagle delay, as Elasticsearch (``http.tcp.no_delay``, on by default): an answer goes out as two
        writes (head, body), and a small body would otherwise wait for the client's delayed ACK (40 ms)."""
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        double = self.server.double
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path, _, query = self.path.partition("?")
        double.requests[f"{method} {path}"] += 1
        try:
            self._filter = filter_paths(query)
        except ValueError as error:
            self._filter = None
            self._reply(400, _error(400, "illegal_argument_exception", str(error)))
            return
        problem = self._media_problem(double.major, bool(body))
        if problem is not None:
            self._reply(400, _error(400, "media_type_header_exception", problem))
            return
        if not double.authorised(self.headers.get("Authorization")):
            self._reply(401, _error(401, "security_exception", "missing authentication credentials for REST "
                                    "request [" + path + "]"), {"WWW-Authenticate": 'ApiKey, Basic realm="security"'})
            return
        if not double.manage and method == "PUT" and path.startswith(("/_ilm/", "/_index_template/")):
            self._reply(403, _error(403, "security_exception", f"action [{path}] is unauthorized for API key"))
        elif path == "/" and method in ("GET", "HEAD"):
            self._reply(200, {"name": "double", "cluster_name": "bastion-test", "cluster_uuid": "double",
                              "version": {"number": f"{double.major}.15.0", "build_flavor": "default"},
                              "tagline": "You Know, for Search"})
        elif path.startswith("/_ilm/policy/") and method == "PUT":
            policy = json.loads(body).get("policy")
            if not isinstance(policy, dict) or "phases" not in policy:
                self._reply(400, _error(400, "x_content_parse_exception", "[put_lifecycle_request] policy.phases"))
                return
            with double.lock:
                double.policies[path.rsplit("/", 1)[1]] = policy
            self._reply(200, {"acknowledged": True})
        elif path.startswith("/_index_template/") and method == "PUT":
            template = json.loads(body)
            if not template.get("index_patterns"):
                self._reply(400, _error(400, "action_request_validation_exception", "index patterns are missing"))
                return
            with double.lock:
                double.templates[path.rsplit("/", 1)[1]] = template
            self._reply(200, {"acknowledged": True})
        elif path.endswith("/_count") and method in ("GET", "POST"):
            with double.lock:
                count = len(double.documents.get(path[1:].split("/", 1)[0], {}))
            self._reply(200, {"count": count, "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0}})
        elif path == "/_bulk" and method in ("POST", "PUT"):
            status, answer, headers = double.bulk(body)
            self._reply(status, answer, headers)
        else:
            self._reply(404, _error(404, "no_handler_found", f"no handler for {method} {path}"))

    def _media_problem(self, major: int, has_body: bool) -> str | None:
        accepted = {major, major - 1}
        headers = [("Accept", self.headers.get("Accept"))]
        if has_body:
            headers.append(("Content-Type", self.headers.get("Content-Type")))
        for name, value in headers:
            if value is None or "compatible-with=" not in value:
                continue  # plain application/json is the server's own version: accepted
            version = value.rsplit("compatible-with=", 1)[1].strip()
            if not version.isdigit() or int(version) not in accepted:
                return (f"Invalid media-type value on headers [{name}]: A compatible version is required on both "
                        f"Content-Type and Accept headers and must be one of {sorted(accepted)} ({value})")
        return None

    def _reply(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        paths = getattr(self, "_filter", None)
        if paths is not None and status < 400:  # Elasticsearch builds error responses unfiltered
            kept = filter_response(body, paths)
            body = {} if kept is _NOTHING else kept
        data = orjson.dumps(body)
        self.send_response(status)
        self.send_header("X-Elastic-Product", "Elasticsearch")
        self.send_header("Content-Type", _MEDIA.format(major=self.server.double.major))
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


if __name__ == "__main__":  # a standalone double in its own process (the shipping benchmark runs it so)
    import sys

    server = ElasticsearchDouble().start()
    print(server.port, flush=True)
    sys.stdin.read()  # until the parent closes our stdin
    server.stop()
