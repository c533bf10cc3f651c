#!/usr/bin/env python3
"""A cheap Elasticsearch drain for throughput numbers: answers the calls the sink makes, parses nothing.

The protocol test double (tests/doubles/es_double.py) parses and checks every document, so it is slower
than the shipping path it receives from and an end-to-end rate against it measures the double. This drain
answers ``GET /``, the setup PUTs and ``_bulk`` (every action ``201 created``, one item per action line,
counted by newlines) with the product header the client checks, so the rate against it is the shipping
path's. Correctness stays with the double. Runs as its own process (as a cluster would be): prints its
port on stdout, serves until stdin closes; ``GET /_count`` answers how many documents it took.
"""

from __future__ import annotations

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

_MEDIA = "application/vnd.elasticsearch+json; compatible-with=8"
_ITEM = b'{"create":{"_index":"logs-bastion.auth-default","status":201,"result":"created"}}'


class _Drain(ThreadingHTTPServer):
    daemon_threads = True
    taken = 0
    lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Drain

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

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
            self._bulk(body)
        else:
            self._reply(b'{"acknowledged":true}')

    def do_POST(self) -> None:
        """``_bulk``."""
        self._bulk(self._body())

    def _bulk(self, body: bytes) -> None:
        """Every action created: one item per action line."""
        actions = body.count(b"\n") // 2
        with self.server.lock:
            self.server.taken += actions
        self._reply(b'{"took":1,"errors":false,"items":[' + b",".join([_ITEM] * actions) + b"]}")

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _reply(self, data: bytes) -> None:
        self.send_response(200)
        self.send_header("X-Elastic-Product", "Elasticsearch")
        self.send_header("Content-Type", _MEDIA)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


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
