"""Protocol test doubles for webhook receivers: a real HTTPS server that enforces what the far ends enforce.

Slack and Alertmanager cannot run here, so these doubles check requests the way the real services (and a
careful generic receiver) do, and answer the way they answer:

- ``generic``: verifies Standard Webhooks signatures from the spec, independently of the sender's code:
  ``HMAC-SHA256(base64decode(secret without whsec_), "{id}.{timestamp}.{body}")``, compared in constant
  time against every ``v1,`` entry of ``webhook-signature``, timestamp within a tolerance; 401 otherwise.
- ``slack``: an incoming webhook: JSON object with a string ``text`` (and Block Kit ``blocks`` if any);
  200 with the plain-text body ``ok``, 400 ``invalid_payload`` otherwise.
- ``alertmanager``: ``POST /api/v2/alerts`` with a JSON array of postableAlerts: ``labels`` required,
  label names ``[a-zA-Z_][a-zA-Z0-9_]*`` with string values, RFC 3339 ``startsAt``/``endsAt``;
  200 empty, 400 with a reason otherwise, 404 on other paths.

``script`` queues answers (status, headers, body) given before normal handling, to test 503, 429 with
Retry-After and 410. TLS uses a throw-away CA made with the real ``openssl``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import shutil
import ssl
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

TOLERANCE_SECS = 300
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)


def verify_standard_webhook(secret: str, headers: dict[str, str], body: bytes, now: float | None = None) -> bool:
    """A receiver's check, written from the Standard Webhooks spec (not from the sender's code)."""
    key = base64.b64decode(secret.split("_", 1)[1])
    message_id, stamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
    if not message_id or not stamp.isdigit():
        return False
    if abs((time.time() if now is None else now) - int(stamp)) > TOLERANCE_SECS:
        return False
    expected = base64.b64encode(hmac.new(key, f"{message_id}.{stamp}.".encode() + body, hashlib.sha256).digest())
    for entry in headers.get("webhook-signature", "").split():
        version, _, signature = entry.partition(",")
        if version == "v1" and hmac.compare_digest(signature.encode(), expected):
            return True
    return False


@dataclass
class WebhookReceiver:
    """A running receiver; ``url`` is where to post, ``requests`` what arrived (accepted or not)."""

    kind: str
    secret: str = ""
    requests: list[Received] = field(default_factory=list)
    accepted: list[Received] = field(default_factory=list)
    script: deque[tuple[int, dict[str, str], bytes]] = field(default_factory=deque)
    url: str = ""
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        """Record the request and decide the answer."""
        received = Received(path, headers, body)
        with self._lock:
            self.requests.append(received)
            if self.script:
                return self.script.popleft()
        status, reply = getattr(self, f"_{self.kind}")(received)
        if 200 <= status < 300:
            with self._lock:
                self.accepted.append(received)
        return status, {"Content-Type": "text/plain"}, reply

    def _generic(self, received: Received) -> tuple[int, bytes]:
        if not verify_standard_webhook(self.secret, received.headers, received.body):
            return 401, b"bad signature"
        payload = received.json()
        if not isinstance(payload, dict) or not {"type", "timestamp", "data"} <= payload.keys():
            return 400, b"expected {type, timestamp, data}"
        return 204, b""

    def _slack(self, received: Received) -> tuple[int, bytes]:
        try:
            payload = received.json()
        except ValueError:
            return 400, b"invalid_payload"
        if not isinstance(payload, dict) or not isinstance(payload.get("text"), str) or not payload["text"]:
            return 400, b"no_text"
        blocks = payload.get("blocks", [])
        if not isinstance(blocks, list) or not all(isinstance(b, dict) and "type" in b for b in blocks):
            return 400, b"invalid_blocks"
        for block in blocks:  # Block Kit: section text at most 3000 characters
            if block["type"] == "section" and len(block["text"]["text"]) > 3000:
                return 400, b"invalid_blocks"
        return 200, b"ok"

    def _alertmanager(self, received: Received) -> tuple[int, bytes]:
        if received.path != "/api/v2/alerts":
            return 404, b"not found"
        try:
            alerts = received.json()
        except ValueError:
            return 400, b"invalid JSON"
        if not isinstance(alerts, list):
            return 400, b"expected an array of alerts"
        for alert in alerts:
            problem = _alert_problem(alert)
            if problem:
                return 400, problem.encode()
        return 200, b""

    def start(self, tls: ssl.SSLContext | None) -> None:
        """Listen on 127.0.0.1 (a free port) from a thread."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                headers = {name.lower(): value for name, value in self.headers.items()}
                status, reply_headers, reply = receiver.answer(self.path, headers, body)
                self.send_response(status)
                for name, value in reply_headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            server.socket = tls.wrap_socket(server.socket, server_side=True)
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{server.server_address[1]}/hooks/T000/B000/{'x' * 24}"

    def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def _alert_problem(alert: Any) -> str | None:
    if not isinstance(alert, dict) or not isinstance(alert.get("labels"), dict) or not alert["labels"]:
        return "alert without labels"
    for mapping in (alert["labels"], alert.get("annotations", {})):
        for name, value in mapping.items():
            if not _LABEL_NAME.match(name) or not isinstance(value, str):
                return f"bad label or annotation {name!r}"
    times = []
    for key in ("startsAt", "endsAt"):
        if key in alert:
            try:
                times.append(datetime.fromisoformat(alert[key]))
            except (TypeError, ValueError):
                return f"{key} is not RFC 3339"
            if times[-1].tzinfo is None:
                return f"{key} has no time zone"
    if len(times) == 2 and times[1] < times[0]:
        return "endsAt before startsAt"
    return None


@dataclass(frozen=True)
class ThrowawayCA:
    """A throw-away CA and a server certificate for 127.0.0.1, made by openssl."""

    ca_file: Path
    server_context: ssl.SSLContext


def make_ca(directory: Path) -> ThrowawayCA | None:
    """Create the CA and certificate in ``directory``; None if openssl is missing."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None

    def run(*argv: str) -> None:
        subprocess.run([openssl, *argv], check=True, capture_output=True, cwd=directory)

    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
        "-subj", "/CN=bastion-guard test CA", "-keyout", "ca.key", "-out", "ca.pem",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", "server.key", "-out", "server.csr")
    (directory / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-out", "server.pem", "-extfile", "ext.cnf")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "server.pem", directory / "server.key")
    return ThrowawayCA(directory / "ca.pem", context)
