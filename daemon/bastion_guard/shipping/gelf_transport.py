"""GELF transports: UDP and TCP (HTTP is in ``gelf_http``). Each says plainly what "delivered" means.

- **UDP: fire and forget.** ``DELIVERED`` means the datagrams left this host, nothing more: GELF over UDP
  has no acknowledgement, so a Graylog that is down, a full receive buffer or one lost chunk (the whole
  message is then dropped after 5 s) loses the record without anyone knowing. The only failure we can see
  is local (no route, name not resolved) or an ICMP "port unreachable" from an earlier datagram, which
  Linux reports on the next send of a connected socket: those become ``RETRY``. Use UDP for volume, where
  a gap is acceptable; use TCP or HTTP for an audit trail.
- **TCP: acknowledged by the receiving host.** A batch is written as null-terminated frames on one
  connection; it is ``DELIVERED`` only once the receiver's TCP stack has acknowledged every byte (the
  kernel's unsent-and-unacknowledged queue, ``TIOCOUTQ``, is empty) and the connection is still
  established afterwards. A receiver that closed or reset the connection, a broken pipe or a timeout makes
  the whole batch ``RETRY``: GELF has no per-message acknowledgement, so we cannot know which of the frames
  it processed, and a duplicate (recognisable by ``_event_id``) is better than a gap. What remains is a
  Graylog that crashes after its kernel acknowledged the bytes and before it read them.
- **HTTP**: every message gets an answer (``202 Accepted``): at-least-once (see ``gelf_http``).

Messages that cannot fit the transport (more than 128 UDP chunks; more than Graylog's default 2 MiB TCP
frame) are sent with ``full_message`` truncated and ``_truncated_from_bytes`` set, rather than lost: the
parsed fields are what searches and alerts use, and a dead-lettered record would not fit on a replay
either. Only a message too big without any ``full_message`` is ``REJECTED``.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import socket
import ssl
import struct
import termios
import time
from collections.abc import Sequence
from typing import Any, Protocol

from bastion_guard.shipping.base import Delivery, Health, Result
from bastion_guard.shipping.gelf import encode, fit
from bastion_guard.shipping.gelf_chunks import Compression, compress, datagrams, max_message_bytes
from bastion_guard.shipping.gelf_config import GelfError, TlsConfig

log = logging.getLogger("bastiond.shipping")

MAX_TCP_FRAME_BYTES = 2 * 1024 * 1024  # Graylog's GELF TCP input drops longer frames (max_message_size)
_TCP_ESTABLISHED = 1  # include/net/tcp_states.h: first byte of struct tcp_info
_FIRST_POLL_SECS = 0.0002  # on a LAN the acknowledgement is back in well under a millisecond
_MAX_POLL_SECS = 0.05


class GelfTransport(Protocol):
    """Sends payloads; one :class:`Delivery` per payload, in order; never raises for network errors."""

    def send(self, payloads: Sequence[dict[str, Any]]) -> list[Delivery]:
        """Transmit ``payloads`` and say what happened to each."""
        ...

    def check(self) -> Health:
        """Whether the far end can be reached now (does not send a message)."""
        ...

    def close(self) -> None:
        """Release the connection or socket."""
        ...


def tls_context(tls: TlsConfig) -> ssl.SSLContext:
    """A client context that verifies the server's certificate and name (always), trusting ``ca_file``
    alone when given, else the system's CAs; TLS 1.2 at least. Raise :class:`GelfError` on unreadable files."""
    try:
        context = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
        if tls.cert_file is not None:
            context.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError) as error:
        raise GelfError(f"cannot load the TLS files of the GELF sink: {error}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def truncated(record_index: int, payload: dict[str, Any], fitted: dict[str, Any]) -> Delivery:
    """The delivery of a payload sent with a cut ``full_message`` (logged without content)."""
    log.warning("GELF message %d (event id %s) was %s bytes; full_message truncated to fit the transport",
                record_index, payload.get("_event_id"), fitted.get("_truncated_from_bytes"))
    return Delivery(Result.DELIVERED, "full_message truncated to fit the transport")


def describe(error: BaseException) -> str:
    """A short, value-free description of a network error for reasons and logs."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"TLS certificate not accepted: {error.verify_message}"
    if isinstance(error, ssl.SSLError):
        return f"TLS error: {error.reason or error}"
    if isinstance(error, TimeoutError):  # socket.timeout is TimeoutError: its text is "timed out"
        return str(error) or "timed out"
    if isinstance(error, socket.gaierror):
        return f"cannot resolve: {error.strerror}"
    return getattr(error, "strerror", None) or str(error) or type(error).__name__


class UdpTransport:
    """GELF over UDP: compressed (gzip by default), chunked when bigger than ``chunk_bytes``."""

    def __init__(self, host: str, port: int, chunk_bytes: int, compression: Compression, timeout_secs: float) -> None:
        self._address = (host, port)
        self._chunk_bytes = chunk_bytes
        self._compression = compression
        self._timeout = timeout_secs
        self._limit = max_message_bytes(chunk_bytes)
        self._sock: socket.socket | None = None

    def send(self, payloads: Sequence[dict[str, Any]]) -> list[Delivery]:
        """Send each payload as one datagram or up to 128 chunks; see the module docstring for what
        ``DELIVERED`` means here."""
        results: list[Delivery] = []
        for index, payload in enumerate(payloads):
            data = compress(encode(payload), self._compression)
            delivered = Delivery(Result.DELIVERED)
            if len(data) > self._limit:
                fitted = fit(payload, self._limit, lambda p: len(compress(encode(p), self._compression)))
                if fitted is None:
                    results.append(Delivery(Result.REJECTED, f"needs more than 128 chunks of {self._chunk_bytes} "
                                                             "bytes even without full_message"))
                    continue
                data = compress(encode(fitted), self._compression)
                delivered = truncated(index, payload, fitted)
            try:
                sock = self._socket()
                for datagram in datagrams(data, self._chunk_bytes):
                    sock.send(datagram)
            except OSError as error:
                self.close()
                reason = f"udp {self._where}: {describe(error)}"
                results.extend(Delivery(Result.RETRY, reason) for _ in payloads[index:])
                return results
            results.append(delivered)
        return results

    def check(self) -> Health:
        """UDP cannot be checked end to end: resolve the name and open a socket towards it."""
        try:
            sock = self._socket()
            peer = sock.getpeername()
        except OSError as error:
            self.close()
            return Health(False, f"udp {self._where}: {describe(error)}")
        return Health(True, f"udp {self._where} ({peer[0]}): sending, no acknowledgement (fire and forget)")

    def close(self) -> None:
        """Close the socket; the next send resolves the name again."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    @property
    def _where(self) -> str:
        return f"{self._address[0]}:{self._address[1]}"

    def _socket(self) -> socket.socket:
        if self._sock is None:
            family, kind, proto, _, address = socket.getaddrinfo(*self._address, type=socket.SOCK_DGRAM)[0]
            sock = socket.socket(family, kind, proto)
            try:
                sock.settimeout(self._timeout)
                sock.connect(address)  # connected: ICMP port-unreachable surfaces as an error on a later send
            except OSError:
                sock.close()
                raise
            self._sock = sock
        return self._sock


class TcpTransport:
    """GELF over TCP (optionally TLS): null-byte framed, uncompressed, one connection kept open."""

    def __init__(self, host: str, port: int, timeout_secs: float, tls: TlsConfig | None) -> None:
        self._address = (host, port)
        self._timeout = timeout_secs
        self._context = tls_context(tls) if tls is not None else None
        self._server_name = (tls.server_name if tls is not None else None) or host
        self._sock: socket.socket | None = None

    def send(self, payloads: Sequence[dict[str, Any]]) -> list[Delivery]:
        """Write the batch, then wait until the receiver acknowledged every byte; else all ``RETRY``."""
        results: list[Delivery | None] = [None] * len(payloads)
        frames: list[bytes] = []
        for index, payload in enumerate(payloads):
            data = encode(payload)
            if len(data) >= MAX_TCP_FRAME_BYTES:
                fitted = fit(payload, MAX_TCP_FRAME_BYTES - 1, lambda p: len(encode(p)))
                if fitted is None:
                    results[index] = Delivery(Result.REJECTED, "longer than a GELF TCP frame even without "
                                                               "full_message")
                    continue
                data = encode(fitted)
                results[index] = truncated(index, payload, fitted)
            frames.append(data + b"\0")
        try:
            if frames:
                sock = self._connection()
                sock.sendall(b"".join(frames))
                self._await_acknowledgement(sock)
        except OSError as error:
            self.close()
            retry = Delivery(Result.RETRY, f"{self._scheme} {self._where}: {describe(error)}")
            return [result if result is not None and result.result is Result.REJECTED else retry
                    for result in results]
        return [result or Delivery(Result.DELIVERED) for result in results]

    def check(self) -> Health:
        """Open a fresh connection (and complete the TLS handshake, verifying the certificate)."""
        try:
            sock = self._connect()
        except OSError as error:
            return Health(False, f"{self._scheme} {self._where}: {describe(error)}")
        sock.close()
        verified = ", certificate verified" if self._context is not None else ""
        return Health(True, f"{self._scheme} {self._where}: accepting connections{verified}")

    def close(self) -> None:
        """Close the connection; the next send opens a new one."""
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None

    @property
    def _scheme(self) -> str:
        return "tcp+tls" if self._context is not None else "tcp"

    @property
    def _where(self) -> str:
        return f"{self._address[0]}:{self._address[1]}"

    def _connection(self) -> socket.socket:
        """The open connection, or a new one if there is none or the receiver closed it meanwhile (a
        restarted Graylog: writing into a half-closed connection would look successful and lose the batch)."""
        if self._sock is not None and _tcp_state(self._sock) != _TCP_ESTABLISHED:
            self.close()
        if self._sock is None:
            self._sock = self._connect()
        return self._sock

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(self._address, timeout=self._timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # the batch's last segment leaves now
            if self._context is not None:
                return self._context.wrap_socket(sock, server_hostname=self._server_name)
        except OSError:
            sock.close()
            raise
        return sock

    def _await_acknowledgement(self, sock: socket.socket) -> None:
        """Return once the peer's TCP stack acknowledged all we wrote and the connection is still up;
        raise ``ConnectionError`` or ``TimeoutError`` otherwise."""
        deadline = time.monotonic() + self._timeout
        pause = _FIRST_POLL_SECS
        while True:
            if _tcp_state(sock) != _TCP_ESTABLISHED:
                raise ConnectionError("the receiver closed the connection before acknowledging the batch")
            if _unacknowledged_bytes(sock) == 0:
                return
            if time.monotonic() >= deadline:
                raise TimeoutError("the receiver did not acknowledge the batch in time")
            time.sleep(pause)
            pause = min(pause * 2, _MAX_POLL_SECS)


def _tcp_state(sock: socket.socket) -> int:
    """The kernel's TCP state of ``sock`` (1 = established); 0 when it cannot be read (closed socket)."""
    try:
        return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
    except OSError:
        return 0


def _unacknowledged_bytes(sock: socket.socket) -> int:
    """Bytes written but not yet acknowledged by the peer (Linux ``TIOCOUTQ`` == ``SIOCOUTQ`` on a socket)."""
    buffer = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, struct.pack("i", 0))
    return int(struct.unpack("i", buffer)[0])


__all__ = ["MAX_TCP_FRAME_BYTES", "GelfTransport", "TcpTransport", "UdpTransport", "describe", "tls_context"]
