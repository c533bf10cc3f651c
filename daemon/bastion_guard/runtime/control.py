"""bastionctl <-> bastiond: one JSON request and one JSON reply per connection over a Unix socket.

The socket is created mode 0600 (owner root in production): it can ban and unban, so only the daemon's
owner may talk to it. JSON only, never pickle; requests are size-limited and validated by the daemon.

Request: ``{"command": "status" | "bans" | "ban" | "unban" | "explain" | "reload", ...arguments}``.
Reply: ``{"ok": true, ...}`` or ``{"ok": false, "error": "message"}``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import socketserver
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bastion_guard.errors import BastionError

MAX_REQUEST_BYTES = 64 * 1024
Handler = Callable[[dict[str, Any]], dict[str, Any]]


class ControlError(BastionError):
    """The daemon could not be reached or refused the request."""


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    handler: Handler


class _RequestHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        server = self.server
        assert isinstance(server, _Server)  # noqa: S101 - only _Server instantiates this handler
        raw = self.rfile.readline(MAX_REQUEST_BYTES + 1)
        if len(raw) > MAX_REQUEST_BYTES:
            reply: dict[str, Any] = {"ok": False, "error": "request too large"}
        else:
            try:
                request = json.loads(raw)
                if not isinstance(request, dict) or not isinstance(request.get("command"), str):
                    raise ValueError("a request is a JSON object with a 'command'")
                reply = server.handler(request)
            except ValueError as error:
                reply = {"ok": False, "error": f"bad request: {error}"}
        with contextlib.suppress(OSError):
            self.wfile.write(json.dumps(reply).encode() + b"\n")


class ControlServer:
    """Serve control requests on ``path`` in background threads; ``handler`` answers each request."""

    def __init__(self, path: Path, handler: Handler) -> None:
        self._path = path
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        if path.exists() or path.is_symlink():
            if _answers(path):
                raise ControlError(f"another bastiond is already listening on {path}")
            path.unlink()  # a stale socket left by a crash
        old_umask = os.umask(0o177)  # the socket file is born 0600: no window where others may connect
        try:
            self._server = _Server(str(path), _RequestHandler)
        finally:
            os.umask(old_umask)
        self._server.handler = handler
        self._thread = threading.Thread(target=self._server.serve_forever, name="control", daemon=True)

    def start(self) -> None:
        """Start answering."""
        self._thread.start()

    def close(self) -> None:
        """Stop answering and remove the socket."""
        self._server.shutdown()
        self._server.server_close()
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()


def _answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def request(path: Path, payload: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    """Send one request to the daemon and return its reply; :class:`ControlError` on any failure."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except FileNotFoundError as error:
            raise ControlError(f"bastiond is not running (no control socket at {path})") from error
        except PermissionError as error:
            raise ControlError(f"permission denied on {path}: run bastionctl as root") from error
        except OSError as error:
            raise ControlError(f"cannot reach bastiond at {path}: {error.strerror or error}") from error
        sock.sendall(json.dumps(payload).encode() + b"\n")
        data = b""
        try:
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except TimeoutError as error:
            raise ControlError("bastiond did not answer in time") from error
    try:
        reply = json.loads(data)
    except ValueError as error:
        raise ControlError("bastiond sent an unreadable reply") from error
    if not isinstance(reply, dict):
        raise ControlError("bastiond sent an unreadable reply")
    if not reply.get("ok", False):
        raise ControlError(str(reply.get("error", "request failed")))
    return reply
