"""The demo's one-time setup scripts against protocol test doubles of the Graylog and Elasticsearch APIs.

Graylog and Elasticsearch cannot run here. The doubles enforce what the real APIs enforce for these calls:
HTTP basic authentication, Graylog's ``X-Requested-By`` header on writes (it answers 400 without it), JSON
bodies with the fields an input or a password change needs, and a Graylog API that is not up at first.
The scripts run under dash with the real curl, as they run under busybox sh in the curl image.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from realparts import descendants, wait_until

REPO = Path(__file__).resolve().parents[2]
GELF_SCRIPT = REPO / "demo" / "graylog" / "gelf-input.sh"
KIBANA_SCRIPT = REPO / "demo" / "elastic" / "kibana-user.sh"
SH = shutil.which("dash") or shutil.which("sh")
CURL = shutil.which("curl")
GRAYLOG_PASSWORD = "graylog-admin-pw"  # noqa: S105 - a test double's password
ELASTIC_PASSWORD = "elastic-pw"  # noqa: S105
KIBANA_PASSWORD = "kibana-pw"  # noqa: S105
INPUT_TYPES = {"org.graylog2.inputs.gelf.tcp.GELFTCPInput", "org.graylog2.inputs.gelf.udp.GELFUDPInput"}

pytestmark = pytest.mark.skipif(SH is None or CURL is None, reason="needs sh and curl")


@dataclass
class ApiState:
    """What the double has been told, for the assertions."""

    users: dict[str, str]
    dead_polls: int = 0  # how many lbstatus polls answer DEAD before ALIVE
    listings: int = 0  # GET /api/system/inputs served
    inputs: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: failures are in the assertions."""

    def _user(self) -> str | None:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        name, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return name if self.server.state.users.get(name) == password else None

    def _send(self, status: int, body: object) -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain" if isinstance(body, str) else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        if self.headers.get("Content-Type") != "application/json":
            return None
        try:
            return json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        except ValueError:
            return None

    def _reject(self, status: int, why: str) -> None:
        self.server.state.rejected.append(f"{self.command} {self.path}: {why}")
        self._send(status, {"message": why})

    def do_GET(self) -> None:
        self.server.routes("GET", self)

    def do_POST(self) -> None:
        self.server.routes("POST", self)


class _Server(ThreadingHTTPServer):
    def __init__(self, state: ApiState, routes: Any) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state
        self.routes = routes


def _graylog_routes(method: str, request: _Handler) -> None:
    state = request.server.state
    if method == "GET" and request.path == "/api/system/lbstatus":
        with state.lock:
            state.dead_polls -= 1
            alive = state.dead_polls < 0
        request._send(200 if alive else 503, "ALIVE" if alive else "DEAD")
        return
    if request._user() != "admin":
        request._reject(401, "authentication required")
        return
    if method == "GET" and request.path == "/api/system/inputs":
        with state.lock:
            state.listings += 1
        request._send(200, {"inputs": state.inputs, "total": len(state.inputs)})
        return
    if method == "POST" and request.path == "/api/system/inputs":
        if not request.headers.get("X-Requested-By"):
            request._reject(400, "CSRF protection: X-Requested-By header missing")
            return
        body = request._body()
        configuration = body.get("configuration") if isinstance(body, dict) else None
        if (not isinstance(configuration, dict) or body.get("type") not in INPUT_TYPES
                or not isinstance(body.get("title"), str) or not isinstance(body.get("global"), bool)
                or not isinstance(configuration.get("port"), int) or "bind_address" not in configuration):
            request._reject(400, f"invalid input: {body}")
            return
        with state.lock:
            state.inputs.append({**body, "id": f"input-{len(state.inputs)}"})
        request._send(201, {"id": state.inputs[-1]["id"]})
        return
    request._reject(404, "no such route")


def _elastic_routes(method: str, request: _Handler) -> None:
    state = request.server.state
    user = request._user()
    if method == "GET" and request.path.startswith("/_cluster/health") and user == "elastic":
        request._send(200, {"status": "green"})
    elif method == "GET" and request.path == "/_security/_authenticate" and user is not None:
        request._send(200, {"username": user})
    elif method == "POST" and request.path == "/_security/user/kibana_system/_password" and user == "elastic":
        body = request._body()
        if not isinstance(body, dict) or not isinstance(body.get("password"), str) or len(body["password"]) < 6:
            request._reject(400, f"invalid body: {body}")
            return
        state.users["kibana_system"] = body["password"]
        request._send(200, {})
    else:
        request._reject(401 if user is None else 404, f"not allowed for {user}")


@contextlib.contextmanager
def _serving(state: ApiState, routes: Any) -> Iterator[str]:
    """Serve ``routes`` on a free loopback port; yield the base URL."""
    server = _Server(state, routes)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _start(script: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    assert SH is not None
    return subprocess.Popen([SH, str(script)], env={"PATH": "/usr/bin:/bin", **env},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _check(script: Path, env: dict[str, str]) -> int:
    assert SH is not None
    return subprocess.run([SH, str(script), "check"], env={"PATH": "/usr/bin:/bin", **env},
                          capture_output=True, check=False, timeout=60).returncode


def _idle(process: subprocess.Popen[str]) -> bool:
    """Whether the script reached its idle loop (its child is the long ``sleep 3600``)."""
    for pid in descendants(process.pid):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:2] == [b"sleep", b"3600"]:
                return True
    return False


def _stop(process: subprocess.Popen[str]) -> str:
    """SIGTERM (the script traps it and exits 0, as on ``docker compose stop``); return its output."""
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=20)
    assert process.returncode == 0, output
    return output


@pytest.fixture
def graylog() -> Iterator[tuple[ApiState, dict[str, str]]]:
    state = ApiState(users={"admin": GRAYLOG_PASSWORD}, dead_polls=1)
    with _serving(state, _graylog_routes) as url:
        yield state, {"GRAYLOG_API": f"{url}/api", "GRAYLOG_ROOT_PASSWORD": GRAYLOG_PASSWORD}


def test_gelf_inputs_are_created_once_and_checked(graylog: tuple[ApiState, dict[str, str]]) -> None:
    """Waits for the API, creates the TCP and UDP GELF inputs, is healthy after, and never creates twice."""
    state, env = graylog
    assert _check(GELF_SCRIPT, env) != 0  # no input yet: not healthy
    process = _start(GELF_SCRIPT, env)
    wait_until(lambda: _idle(process) or process.poll() is not None, "both inputs and the idle loop", timeout=30)
    assert _check(GELF_SCRIPT, env) == 0
    output = _stop(process)
    assert "waiting for the Graylog API" in output
    assert not state.rejected, state.rejected
    assert {entry["type"] for entry in state.inputs} == INPUT_TYPES
    assert {entry["configuration"]["port"] for entry in state.inputs} == {12201}
    assert all(entry["configuration"]["use_null_delimiter"] for entry in state.inputs)
    listed = state.listings
    again = _start(GELF_SCRIPT, env)  # a restarted stack: both inputs looked up, none created
    wait_until(lambda: (state.listings >= listed + 2 and _idle(again)) or again.poll() is not None,
               "second run to look both inputs up and go idle", timeout=30)
    assert _stop(again).count("exists") == 2
    assert len(state.inputs) == 2 and _check(GELF_SCRIPT, env) == 0


def test_gelf_check_fails_with_a_wrong_password(graylog: tuple[ApiState, dict[str, str]]) -> None:
    """The health check authenticates: a wrong password is unhealthy, not silently fine."""
    state, env = graylog
    state.inputs.append({"title": "bastion-guard GELF TCP", "type": sorted(INPUT_TYPES)[0]})
    assert _check(GELF_SCRIPT, env) == 0
    assert _check(GELF_SCRIPT, {**env, "GRAYLOG_ROOT_PASSWORD": "wrong"}) != 0


def test_kibana_system_password_is_set_and_checked() -> None:
    """Sets kibana_system's password as the elastic user; healthy only once kibana_system can log in."""
    state = ApiState(users={"elastic": ELASTIC_PASSWORD})
    with _serving(state, _elastic_routes) as url:
        env = {"ELASTICSEARCH_URL": url, "ELASTIC_PASSWORD": ELASTIC_PASSWORD, "KIBANA_PASSWORD": KIBANA_PASSWORD}
        assert _check(KIBANA_SCRIPT, env) != 0
        process = _start(KIBANA_SCRIPT, env)
        wait_until(lambda: "kibana_system" in state.users or process.poll() is not None, "password set", timeout=30)
        wait_until(lambda: _idle(process) or process.poll() is not None, "the script to go idle", timeout=30)
        assert _check(KIBANA_SCRIPT, env) == 0
        assert "password set" in _stop(process)
    assert state.users["kibana_system"] == KIBANA_PASSWORD
    assert [entry for entry in state.rejected if "_password" in entry] == []
