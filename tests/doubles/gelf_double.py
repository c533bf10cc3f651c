"""GELF protocol test double: local UDP, TCP (optionally TLS) and HTTP receivers that enforce GELF 1.1.

Graylog cannot run on this machine, so these receivers stand in for its GELF inputs and check what the
spec (Graylog2/documentation ``pages/gelf.rst``) and Graylog's codec demand, recording every violation:

- UDP: a datagram is a whole message or a chunk. Chunks start with magic ``0x1e 0x0f``, an 8-byte message
  id, a sequence number and a count; the count must be 1..128 and the number below the count; chunks of a
  message are reassembled per sender and id, and a message not complete within 5 seconds of its first
  chunk is dropped (the clock is injectable). Payloads are detected as gzip (``1f 8b``), zlib (``78 ..``
  with a valid header checksum) or plain JSON, as Graylog does.
- TCP: frames end with a null byte and are plain JSON (Graylog's TCP input takes no compression); frames
  longer than 2 MiB are violations. With ``tls=`` the listener speaks TLS with the given certificate.
- HTTP: ``POST /gelf`` with plain, gzip or deflate bodies; 202 when valid, 400 when not (stricter than
  Graylog, which answers 202 before parsing and drops a bad message silently: here it shows), 404 for
  other paths, 413 for bodies over 64 KiB (Graylog's ``max_chunk_size``), 401 without the configured
  basic-auth credentials; with ``bulk=True`` a body holds newline-separated messages ("Enable Bulk
  Receiving"); answers can be scripted (429 + Retry-After, 503) for the next requests.

Every payload is validated: JSON object (no NaN), ``version`` "1.1", non-empty ``host`` and
``short_message`` strings, numeric ``timestamp``, integer ``level`` 0..7, additional fields named
``_[\\w.-]*`` (never ``_id``) with string or number values. Valid messages land in ``messages``; problems in
``violations`` (a test asserts there are none).
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import http.server
import json
import math
import re
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

CHUNK_MAGIC = b"\x1e\x0f"
MAX_CHUNKS = 128
CHUNK_TIMEOUT_SECS = 5.0
MAX_TCP_FRAME_BYTES = 2 * 1024 * 1024
MAX_HTTP_BODY_BYTES = 64 * 1024  # the HTTP input's max_chunk_size default (the compressed body, if compressed)
_STANDARD = {"version", "host", "short_message", "full_message", "timestamp", "level", "facility", "line", "file"}
_FIELD = re.compile(r"^_[\w.\-]*$")


class ProtocolViolationError(ValueError):
    """What a real Graylog input would refuse or silently drop."""


@dataclass(frozen=True)
class Received:
    """One valid message: its payload, how it came (udp/tcp/http) and how it was encoded."""

    payload: dict[str, Any]
    transport: str
    encoding: str
    chunks: int = 1


def decode_payload(data: bytes) -> tuple[dict[str, Any], str]:
    """The JSON object in ``data`` (gzip, zlib or plain, told apart by magic bytes) and its encoding."""
    if data[:2] == b"\x1f\x8b":
        encoding, text = "gzip", _inflate(lambda: gzip.decompress(data))
    elif len(data) >= 2 and data[0] == 0x78 and (data[0] * 256 + data[1]) % 31 == 0:
        encoding, text = "zlib", _inflate(lambda: zlib.decompress(data))
    elif data[:1] == b"{":
        encoding, text = "plain", data
    else:
        raise ProtocolViolationError(f"payload is not gzip, zlib or JSON (starts with {data[:2].hex()})")
    try:
        payload = json.loads(text.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError) as error:
        raise ProtocolViolationError(f"payload is not UTF-8 JSON: {error}") from None
    validate(payload)
    return payload, encoding


def _inflate(decompress: Callable[[], bytes]) -> bytes:
    try:
        return decompress()
    except (OSError, zlib.error, EOFError) as error:
        raise ProtocolViolationError(f"corrupt compressed payload: {error}") from None


def _refuse_constant(name: str) -> Any:
    raise ProtocolViolationError(f"{name} is not JSON")


def validate(payload: object) -> None:
    """Raise :class:`ProtocolViolationError` unless ``payload`` is a valid GELF 1.1 message."""
    if not isinstance(payload, dict):
        raise ProtocolViolationError("a GELF message is a JSON object")
    if payload.get("version") != "1.1":
        raise ProtocolViolationError(f"version must be '1.1', not {payload.get('version')!r}")
    for required in ("host", "short_message"):
        if not isinstance(payload.get(required), str) or not payload[required].strip():
            raise ProtocolViolationError(f"{required} must be a non-empty string")
    if "full_message" in payload and not isinstance(payload["full_message"], str):
        raise ProtocolViolationError("full_message must be a string")
    timestamp = payload.get("timestamp")
    if timestamp is not None and (not _is_number(timestamp) or not math.isfinite(timestamp)):
        raise ProtocolViolationError("timestamp must be a number of seconds")
    level = payload.get("level")
    if level is not None and (not isinstance(level, int) or isinstance(level, bool) or not 0 <= level <= 7):
        raise ProtocolViolationError(f"level must be a syslog level 0..7, not {level!r}")
    for name, value in payload.items():
        if name in _STANDARD:
            continue
        if not _FIELD.match(name):
            raise ProtocolViolationError(f"additional field {name!r} must match ^_[\\w.\\-]*$")
        if name == "_id":
            raise ProtocolViolationError("_id must not be sent")
        if not (isinstance(value, str) or _is_number(value)):
            raise ProtocolViolationError(f"additional field {name} must be a string or a number, not {type(value).__name__}")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass
class _Partial:
    count: int
    first_seen: float
    parts: dict[int, bytes] = field(default_factory=dict)


class ChunkAssembler:
    """Reassembles chunked UDP messages the way Graylog does; ``clock`` is injectable."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._pending: dict[tuple[Any, bytes], _Partial] = {}
        self.expired = 0  # incomplete messages dropped after CHUNK_TIMEOUT_SECS

    def feed(self, sender: Any, datagram: bytes) -> tuple[bytes, int] | None:
        """The whole message and its chunk count once complete; ``None`` while waiting for chunks."""
        self.expire()
        if datagram[:2] != CHUNK_MAGIC:
            return datagram, 1
        if len(datagram) <= 12:
            raise ProtocolViolationError("chunk shorter than its 12-byte header")
        message_id, sequence, count = datagram[2:10], datagram[10], datagram[11]
        if not 1 <= count <= MAX_CHUNKS:
            raise ProtocolViolationError(f"chunk count {count} outside 1..{MAX_CHUNKS}")
        if sequence >= count:
            raise ProtocolViolationError(f"sequence number {sequence} not below the count {count}")
        key = (sender, message_id)
        partial = self._pending.setdefault(key, _Partial(count, self._clock()))
        if partial.count != count:
            raise ProtocolViolationError("chunks of one message disagree on the count")
        if sequence in partial.parts:
            raise ProtocolViolationError(f"chunk {sequence} sent twice")
        partial.parts[sequence] = datagram[12:]
        if len(partial.parts) < count:
            return None
        del self._pending[key]
        return b"".join(partial.parts[index] for index in range(count)), count

    def expire(self) -> None:
        """Drop messages whose first chunk came more than 5 seconds ago."""
        now = self._clock()
        for key in [key for key, partial in self._pending.items() if now - partial.first_seen > CHUNK_TIMEOUT_SECS]:
            del self._pending[key]
            self.expired += 1


class _Inbox:
    """Valid messages and violations, shared by a receiver's threads. With ``keep=False`` (benchmarks)
    messages are validated and counted but not kept."""

    def __init__(self, keep: bool = True) -> None:
        self.messages: list[Received] = []
        self.violations: list[str] = []
        self.count = 0
        self._keep = keep
        self._changed = threading.Condition()

    def accept(self, data: bytes, transport: str, chunks: int = 1) -> bool:
        try:
            payload, encoding = decode_payload(data)
        except ProtocolViolationError as error:
            self.violation(str(error))
            return False
        with self._changed:
            self.count += 1
            if self._keep:
                self.messages.append(Received(payload, transport, encoding, chunks))
            self._changed.notify_all()
        return True

    def violation(self, text: str) -> None:
        with self._changed:
            self.violations.append(text)
            self._changed.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """The messages, once there are at least ``count`` (or when ``timeout`` passes)."""
        with self._changed:
            self._changed.wait_for(lambda: self.count >= count, timeout)
            return list(self.messages)


class UdpReceiver(_Inbox):
    """A GELF UDP input on 127.0.0.1 (port chosen by the kernel)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, keep: bool = True) -> None:
        super().__init__(keep)
        self.assembler = ChunkAssembler(clock)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)  # 128 chunks in a burst
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gelf-udp-double", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                datagram, sender = self._sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                whole = self.assembler.feed(sender, datagram)
            except ProtocolViolationError as error:
                self.violation(str(error))
                continue
            if whole is not None:
                self.accept(whole[0], "udp", whole[1])

    def close(self) -> None:
        """Stop receiving."""
        self._stop.set()
        self._thread.join(5)
        self._sock.close()


class TcpReceiver(_Inbox):
    """A GELF TCP input on 127.0.0.1: null-terminated plain JSON frames, TLS when ``tls`` is given."""

    def __init__(self, tls: ssl.SSLContext | None = None, port: int = 0, keep: bool = True) -> None:
        super().__init__(keep)
        self._tls = tls
        self._listener = socket.create_server(("127.0.0.1", port), reuse_port=False)
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.accepted = 0  # connections taken (TLS handshake completed, if any)
        self.handshake_failures = 0
        self._thread = threading.Thread(target=self._accept_loop, name="gelf-tcp-double", daemon=True)
        self._thread.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        if self._tls is not None:
            try:
                conn = self._tls.wrap_socket(conn, server_side=True)
            except (OSError, ssl.SSLError):
                self.handshake_failures += 1
                conn.close()
                return
        with self._lock:
            self.accepted += 1
            self._connections.append(conn)
        buffer = b""
        try:
            for chunk in _reads(conn, self._stop):
                buffer += chunk
                *frames, buffer = buffer.split(b"\0")
                for frame in frames:
                    self._frame(frame)
                if len(buffer) > MAX_TCP_FRAME_BYTES:
                    self.violation("TCP frame longer than 2 MiB")
                    return
            if buffer:
                self.violation("connection closed inside a frame (no terminating null byte)")
        finally:
            with self._lock:
                if conn in self._connections:
                    self._connections.remove(conn)
            conn.close()

    def _frame(self, frame: bytes) -> None:
        if not frame:
            return  # Graylog skips empty frames
        if frame[:1] != b"{":
            self.violation("TCP frames must be plain JSON (GELF over TCP is never compressed)")
            return
        self.accept(frame, "tcp")

    def drop_connections(self) -> None:
        """Reset every open connection, as a restarting Graylog would."""
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def close(self) -> None:
        """Stop listening and drop every connection."""
        self._stop.set()
        self._thread.join(5)
        self._listener.close()
        self.drop_connections()


def _reads(conn: socket.socket, stop: threading.Event) -> Iterator[bytes]:
    while not stop.is_set():
        try:
            data = conn.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            return
        if not data:
            return
        yield data


@dataclass
class HttpScript:
    """Answers to give instead of the normal ones, for the next requests (first in, first out)."""

    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)


class HttpReceiver(_Inbox):
    """A GELF HTTP input on 127.0.0.1: ``POST /gelf`` -> 202, with optional basic auth and TLS."""

    def __init__(
        self, tls: ssl.SSLContext | None = None, credentials: tuple[str, str] | None = None, keep: bool = True,
        bulk: bool = False, max_body_bytes: int = MAX_HTTP_BODY_BYTES, port: int = 0,
    ) -> None:
        super().__init__(keep)
        self.bulk = bulk
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.close_idle = False  # close each connection after its answer, as the input's idle timeout does
        self.script = HttpScript()
        self.requests = 0
        self.authorizations: list[str | None] = []
        expected = None
        if credentials is not None:
            expected = "Basic " + base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()
        inbox = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as Graylog's Netty input

            def setup(self) -> None:
                super().setup()
                with inbox._lock:
                    inbox._connections.add(self.connection)

            def finish(self) -> None:
                with inbox._lock:
                    inbox._connections.discard(self.connection)
                super().finish()

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > max_body_bytes:  # Netty's aggregator refuses it and closes, before any handler
                    self.close_connection = True
                    self._answer(413)
                    return
                body = self.rfile.read(length)
                inbox.requests += 1
                inbox.authorizations.append(self.headers.get("Authorization"))
                if inbox.script.answers:
                    status, headers = inbox.script.answers.pop(0)
                    self._answer(status, headers)
                elif self.path != "/gelf":
                    self._answer(404)
                elif expected is not None and self.headers.get("Authorization") != expected:
                    self._answer(401, {"WWW-Authenticate": 'Basic realm="graylog"'})
                else:
                    self._answer(202 if inbox._body(body, self.headers.get("Content-Encoding")) else 400)
                if inbox.close_idle:  # without saying so: the client finds out on its next request
                    self.close_connection = True

            def _answer(self, status: int, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: tests read ``messages`` and ``violations``."""

        self._server = _QuietServer(("127.0.0.1", port), Handler)
        if tls is not None:  # the handshake happens in the request thread, so a refused one is just logged
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True,
                                                  do_handshake_on_connect=False)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.1,), daemon=True)
        self._thread.start()

    def _body(self, body: bytes, encoding: str | None) -> bool:
        """Decode a request body; with ``bulk``, each newline-separated message is one GELF message."""
        try:
            body = self._inflate(body, encoding)
        except ProtocolViolationError as error:
            self.violation(str(error))
            return False
        if not self.bulk:
            return self.accept(body, "http")
        results = [self.accept(line, "http") for line in body.split(b"\n") if line.strip()]
        return all(results) and bool(results)

    def _inflate(self, body: bytes, encoding: str | None) -> bytes:
        try:
            if encoding == "gzip":
                return gzip.decompress(body)
            if encoding == "deflate":
                return zlib.decompress(body)
        except (OSError, zlib.error, EOFError) as error:
            raise ProtocolViolationError(f"corrupt {encoding} body: {error}") from None
        if encoding not in (None, "identity"):
            raise ProtocolViolationError(f"unknown Content-Encoding {encoding}")
        return body

    def close(self) -> None:
        """Stop serving and drop kept-alive connections, as a stopped Graylog would."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
        with self._lock:
            connections, self._connections = self._connections, set()
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _QuietServer(http.server.ThreadingHTTPServer):
    """Records a failed request (a refused TLS handshake) instead of printing a traceback."""

    daemon_threads = True
    errors = 0

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Count it."""
        type(self).errors += 1


def server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A TLS server context for the TCP and HTTP receivers."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context
