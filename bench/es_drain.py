#!/usr/bin/env python3
"""A cheap Elasticsearch drain for throughput numbers: answers the calls the sink makes, parses nothing.

The protocol test double (tests/doubles/es_double.py) parses and checks every document, so it is slower
than the shipping path it receives from and an end-to-end rate against it measures the double. This drain
answers ``GET /``, the setup PUTs and ``_bulk`` (every action ``201 created``, one item per action line,
counted by newlines) with the product header the client checks, so the rate against it is the shipping
path's. Correctness stays with the double. ``filter_path`` is applied to the canned answer by the double's
own implementation of Elasticsearch's response filtering (``es_double.filter_response``). Runs as its own
process (as a cluster would be): prints its port on stdout, serves until stdin closes; ``GET /_count``
answers how many documents it took.
"""

from __future__ import annotations

import functools
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "doubles"))
from es_double import filter_paths, filter_response  # the double's filter_path: one implementation

_MEDIA = "application/vnd.elasticsearch+json; compatible-with=8"
_ITEM = {"create": {"_index": "logs-bastion.auth-default", "status": 201, "result": "created"}}


class _Drain(ThreadingHTTPServer):
    daemon_threads = True
    taken = 0
    lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Drain

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def setup(self) -> None:
        """No Nagle delay, as Elasticsearch (``http.tcp.no_delay``, on by default): the answer goes out as two
        writes (head, body), and a small body would otherwise wait for the client's delayed ACK (40 ms)."""
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        """``GET /`` (health) and ``GET /_count``."""
        self._body()
        if self.path.split("?", 1)[0].endswith("/_count"):
            with self.server.lock:
                self._reply(orjson.dumps({"count": self.server.taken}))
        else:
            self._reply(orjson.dumps({"cluster_name": "drain", "version": {"number": "8.15.0"}}))

    def do_PUT(self) -> None:
        """``_bulk`` (the client sends it as a PUT), index templates and the ILM policy."""
        body = self._body()
        if self.path.split("?", 1)[0].endswith("/_bulk"):
            self._bulk(body, self.path.partition("?")[2])
        else:
            self._reply(b'{"acknowledged":true}')

    def do_POST(self) -> None:
        """``_bulk``."""
        self._bulk(self._body(), self.path.partition("?")[2])

    def _bulk(self, body: bytes, query: str) -> None:
        """Every action created: one item per action line (filtered as ``filter_path`` in ``query`` says)."""
        actions = body.count(b"\n") // 2
        with self.server.lock:
            self.server.taken += actions
        head, item = _answer_parts(query)
        self._reply(head + b",".join([item] * actions) + b"]}" if item else head)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _reply(self, data: bytes) -> None:
        self.send_response(200)
        self.send_header("X-Elastic-Product", "Elasticsearch")
        self.send_header("Content-Type", _MEDIA)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@functools.lru_cache(maxsize=8)
def _answer_parts(query: str) -> tuple[bytes, bytes]:
    """The bulk answer up to its first item, and one item, as ``filter_path`` leaves them (no item: the
    filter keeps no part of the items, and the first part is the whole answer)."""
    answer: dict[str, Any] = {"took": 1, "errors": False, "items": [_ITEM]}
    paths = filter_paths(query)
    if paths is not None:
        kept = filter_response(answer, paths)
        answer = kept if isinstance(kept, dict) else {}
    items = answer.pop("items", None)
    if not items:
        return orjson.dumps(answer), b""
    head = orjson.dumps(answer)[:-1] + (b"," if answer else b"")
    return head + b'"items":[', orjson.dumps(items[0])


def main() -> int:
    """Serve on a free loopback port until stdin closes."""
    server = _Drain(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(server.server_address[1], flush=True)
    sys.stdin.read()
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
