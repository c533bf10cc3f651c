"""GELF over HTTP: ``POST /gelf`` on a kept-alive connection; at-least-once.

Graylog's GELF HTTP input answers ``202 Accepted`` once the body is in its pipeline (before the codec
parses it), so every request gets a real answer: ``202`` is ``DELIVERED``, and a request whose answer never
came (timeout, reset) is sent again (``RETRY``). One message per request by default; with ``bulk`` (the
input's "Enable Bulk Receiving", Graylog 5.0 and later) many newline-separated messages per request, which
is what lets HTTP keep up with detection. The input refuses bodies over its ``max_chunk_size`` (64 KiB by
default, compressed size) with 413, so single messages are fitted to ``max_body_bytes`` (``full_message``
truncated) and bulk requests are cut to it. It closes connections idle for 60 s, so a request failing on a
reused connection is tried once more on a fresh one. The answer classes follow the sink contract, where
``REJECTED`` means "this record will never be accepted as it is":

- ``429``, ``408`` and ``5xx``: ``RETRY``, honouring ``Retry-After`` (seconds or an HTTP date); the rest of
  the batch is not sent either, since the input asked us to slow down or is failing;
- ``401``, ``403``, ``404``, ``405``, ``407``, a redirect or another ``2xx``: ``RETRY`` for the whole batch.
  They say the sink is misconfigured (credentials, path, not a GELF input), not that a record is bad:
  records wait in the spool, bounded by its size, while health says what is wrong, instead of filling
  the dead-letter store with good records;
- any other ``4xx`` (``400`` from a proxy or a stricter input, ``413`` too large, ...): ``REJECTED``, and the
  batch goes on. A bulk request refused that way is sent again one message per request, so that only the
  offending record is rejected.

The standard library's ``http.client`` is enough for one request shape and keeps the daemon free of an
HTTP stack dependency. The basic-auth header is built once from the secret and kept in a private
attribute; it is never logged and never part of a reason or exception message.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import http.client
import ssl
import time
from collections.abc import Sequence
from datetime import UTC
from typing import Any

from bastion_guard.shipping.base import Delivery, Health, Result
from bastion_guard.shipping.gelf import encode, fit
from bastion_guard.shipping.gelf_chunks import Compression, compress
from bastion_guard.shipping.gelf_config import DEFAULT_MAX_BODY_BYTES, TlsConfig
from bastion_guard.shipping.gelf_transport import describe, tls_context, truncated

_ACCEPTED = 202
_TRANSIENT = frozenset({408, 425, 429})
_MISCONFIGURED = frozenset({401, 403, 404, 405, 407})
_MAX_ANSWER_BYTES = 64 * 1024  # an answer body is read (to reuse the connection) but never kept
_CONTENT_ENCODING = {Compression.GZIP: "gzip", Compression.ZLIB: "deflate"}


class _VerifiedHttps(http.client.HTTPSConnection):
    """HTTPS that verifies the certificate against ``server_name`` (which may differ from the address)."""

    def __init__(self, host: str, port: int, *, timeout: float, context: ssl.SSLContext, server_name: str) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._tls_context = context
        self._server_name = server_name

    def connect(self) -> None:
        """TCP, then a TLS handshake that checks ``server_name``."""
        http.client.HTTPConnection.connect(self)
        self.sock = self._tls_context.wrap_socket(self.sock, server_hostname=self._server_name)


class HttpTransport:
    """GELF over HTTP(S), optionally compressed and with basic auth."""

    def __init__(
        self, host: str, port: int, path: str, *, timeout_secs: float, tls: TlsConfig | None,
        compression: Compression = Compression.NONE, credentials: tuple[str, str] | None = None,
        bulk: bool = False, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self._host, self._port, self._path = host, port, path
        self._timeout = timeout_secs
        self._bulk = bulk
        self._max_body = max_body_bytes
        self._context = tls_context(tls) if tls is not None else None
        self._server_name = (tls.server_name if tls is not None else None) or host
        self._compression = compression
        self._headers = {"Content-Type": "application/json"}
        if compression in _CONTENT_ENCODING:
            self._headers["Content-Encoding"] = _CONTENT_ENCODING[compression]
        if credentials is not None:
            token = base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode("ascii")
            self._headers["Authorization"] = f"Basic {token}"
        self._connection: http.client.HTTPConnection | None = None
        self._answered = 0  # requests answered on the current connection (a reused one may have gone stale)

    def send(self, payloads: Sequence[dict[str, Any]]) -> list[Delivery]:
        """POST the payloads (one per request, or in bulk); stop early (the rest ``RETRY``) when the input
        is failing or misconfigured."""
        results: list[Delivery | None] = [None] * len(payloads)
        messages: list[tuple[int, bytes]] = []  # (index, encoded message) of those that fit a request
        for index, payload in enumerate(payloads):
            data = encode(payload)
            if len(self._body([data])) > self._max_body:
                fitted = fit(payload, self._max_body, lambda p: len(self._body([encode(p)])))
                if fitted is None:
                    results[index] = Delivery(Result.REJECTED, f"longer than max_body_bytes ({self._max_body}) "
                                                               "even without full_message")
                    continue
                data = encode(fitted)
                results[index] = truncated(index, payload, fitted)
            messages.append((index, data))
        requests = self._bulk_requests(messages) if self._bulk else [[message] for message in messages]
        for number, request in enumerate(requests):
            delivery, stop = self._post(self._body([data for _, data in request]))
            if delivery.result is Result.REJECTED and len(request) > 1:  # find the record it is about
                delivery, stop = self._one_by_one(request, results)
            else:
                for index, _ in request:
                    _settle(results, index, delivery)
            if stop:
                waiting = Delivery(Result.RETRY, delivery.reason, delivery.retry_after_secs)
                for later in requests[number + 1 :]:
                    for index, _ in later:
                        results[index] = waiting
                break
        return [result or Delivery(Result.RETRY, "not sent") for result in results]

    def _one_by_one(self, request: list[tuple[int, bytes]], results: list[Delivery | None]) -> tuple[Delivery, bool]:
        """Send a refused bulk request's messages singly; the last answer and whether to stop."""
        delivery, stop = Delivery(Result.DELIVERED), False
        for position, (index, data) in enumerate(request):
            delivery, stop = self._post(self._body([data]))
            _settle(results, index, delivery)
            if stop:
                for rest, _ in request[position + 1 :]:
                    results[rest] = Delivery(Result.RETRY, delivery.reason, delivery.retry_after_secs)
                break
        return delivery, stop

    def _bulk_requests(self, messages: list[tuple[int, bytes]]) -> list[list[tuple[int, bytes]]]:
        """Consecutive messages grouped so that each request's uncompressed body stays within the limit
        (a compressed body is smaller still)."""
        requests: list[list[tuple[int, bytes]]] = []
        current: list[tuple[int, bytes]] = []
        size = 0
        for index, data in messages:
            added = len(data) + (1 if current else 0)  # the newline before it
            if current and size + added > self._max_body:
                requests.append(current)
                current, size, added = [], 0, len(data)
            current.append((index, data))
            size += added
        if current:
            requests.append(current)
        return requests

    def _body(self, messages: list[bytes]) -> bytes:
        """The request body: the messages, newline-separated (bulk), compressed as configured."""
        return compress(b"\n".join(messages), self._compression)

    def check(self) -> Health:
        """Open a fresh connection (TLS handshake included); no message is posted."""
        connection = self._new_connection()
        try:
            connection.connect()
        except OSError as error:
            return Health(False, f"{self._url}: {describe(error)}")
        finally:
            connection.close()
        verified = ", certificate verified" if self._context is not None else ""
        return Health(True, f"{self._url}: accepting connections{verified}")

    def close(self) -> None:
        """Close the kept-alive connection."""
        if self._connection is not None:
            with contextlib.suppress(OSError):
                self._connection.close()
            self._connection = None

    @property
    def _url(self) -> str:
        scheme = "https" if self._context is not None else "http"
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{scheme}://{host}:{self._port}{self._path}"

    def _new_connection(self) -> http.client.HTTPConnection:
        if self._context is not None:
            return _VerifiedHttps(self._host, self._port, timeout=self._timeout, context=self._context,
                                  server_name=self._server_name)
        return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)

    def _post(self, body: bytes) -> tuple[Delivery, bool]:
        """One message: its delivery, and whether the rest of the batch should wait."""
        for attempt in (1, 2):
            reused = self._connection is not None and self._answered > 0
            if self._connection is None:
                self._connection = self._new_connection()
                self._answered = 0
            try:
                self._connection.request("POST", self._path, body, self._headers)
                response = self._connection.getresponse()
                response.read(_MAX_ANSWER_BYTES)
            except (OSError, http.client.HTTPException) as error:
                self.close()
                if reused and attempt == 1:  # the server closed an idle kept-alive connection: try a fresh one
                    continue
                error_text = describe(error) if isinstance(error, OSError) else type(error).__name__
                return Delivery(Result.RETRY, f"{self._url}: {error_text}"), True
            self._answered += 1
            if not response.isclosed() or response.will_close:
                self.close()  # an unread or closing answer: the connection cannot carry the next request
            return classify(response.status, response.reason, response.getheader("Retry-After"))
        raise AssertionError("unreachable: the second attempt always returns")


def _settle(results: list[Delivery | None], index: int, delivery: Delivery) -> None:
    """Record ``delivery`` for message ``index``, keeping the "truncated" note of one that was delivered."""
    previous = results[index]
    results[index] = previous if previous is not None and delivery.result is Result.DELIVERED else delivery


def classify(status: int, reason: str, retry_after: str | None) -> tuple[Delivery, bool]:
    """The delivery for an HTTP answer, and whether the rest of the batch should wait."""
    text = f"HTTP {status} {reason}".strip()
    if status == _ACCEPTED:
        return Delivery(Result.DELIVERED), False
    if status in _TRANSIENT or status >= 500:
        return Delivery(Result.RETRY, text, parse_retry_after(retry_after)), True
    if status in _MISCONFIGURED or status < 400:
        hint = "" if status >= 300 else " (a GELF HTTP input answers 202)"
        return Delivery(Result.RETRY, f"{text}{hint}: check the sink's address, path and credentials"), True
    return Delivery(Result.REJECTED, text), False


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or an HTTP date); ``None`` if absent
    or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


__all__ = ["HttpTransport", "classify", "parse_retry_after"]
