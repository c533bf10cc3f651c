"""One HTTPS POST and what its answer means for the records it carried.

The standard library's ``http.client`` is enough and follows no redirects (Standard Webhooks: a 3xx is a
failure, not an invitation to send alerts elsewhere). Certificates are always verified, against the
configured CA file or the system store. Error texts name the destination only as :func:`redact_url` does.

=========================  ==========  ==============================================================
answer                     result      why
=========================  ==========  ==============================================================
2xx                        DELIVERED
408, 429, 5xx              RETRY       transient; ``Retry-After`` (seconds or an HTTP date) is passed on
timeout, connection error  RETRY
410 Gone                   REJECTED    the endpoint was removed (Slack: archived channel); logged loudly
3xx, other 4xx             REJECTED    it will not accept this as it is: dead-letter, replay after a fix
=========================  ==========  ==============================================================
"""

from __future__ import annotations

import http.client
import ssl
import time
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import urlsplit

from bastion_guard.shipping.base import Delivery, Health, Result
from bastion_guard.shipping.secrets import Secret, redact_url

_USER_AGENT = "bastion-guard-webhook/1"
_MAX_ANSWER_BYTES = 4096  # a reason for the log; Slack answers with a short plain-text word
MAX_RETRY_AFTER_SECS = 86400.0  # a server asking for more than a day is treated as asking for a day


@dataclass(frozen=True, slots=True)
class Sent:
    """What one POST came to: the delivery result and the HTTP status (None if there was no answer)."""

    delivery: Delivery
    status: int | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer, reduced to what decides delivery."""

    status: int
    retry_after: str | None
    text: str


class Transport:
    """POSTs JSON to one URL over a fresh verified connection per message (alerts are rare by design)."""

    def __init__(self, url: Secret, *, ca_file: Path | None, timeout_secs: float) -> None:
        self._url = url
        parts = urlsplit(url.reveal())
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._timeout = timeout_secs
        self._context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        self.where = redact_url(url.reveal())

    def post(self, body: bytes, headers: dict[str, str]) -> Sent:
        """Send ``body``; never raises for transport problems."""
        try:
            answer = self._exchange(body, headers)
        except (OSError, http.client.HTTPException) as error:
            return Sent(Delivery(Result.RETRY, self._describe(error)))
        return Sent(classify(answer, self.where), answer.status)

    def probe(self) -> Health:
        """Open a connection (TLS verified) and close it, sending nothing: for the start-up check."""
        connection = self._connection()
        try:
            connection.connect()
        except (OSError, http.client.HTTPException) as error:
            return Health(False, self._describe(error))
        finally:
            connection.close()
        return Health(True, f"{self.where} reachable" + (", certificate verified" if self._https else ""))

    def _describe(self, error: BaseException) -> str:
        if isinstance(error, TimeoutError):
            return f"timeout after {self._timeout:g}s talking to {self.where}"
        if isinstance(error, ssl.SSLCertVerificationError):
            return f"TLS verification of {self.where} failed: {error.verify_message}"
        cause = getattr(error, "strerror", None) or type(error).__name__
        return f"cannot post to {self.where}: {cause}"

    def _connection(self) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(self._host, self._port, timeout=self._timeout, context=self._context)
        return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)

    def _exchange(self, body: bytes, headers: dict[str, str]) -> Answer:
        connection = self._connection()
        try:
            connection.request("POST", self._target, body=body, headers={
                "Content-Type": "application/json", "User-Agent": _USER_AGENT, **headers})
            response = connection.getresponse()
            text = response.read(_MAX_ANSWER_BYTES).decode("utf-8", "replace")
            return Answer(response.status, response.getheader("Retry-After"), text)
        finally:
            connection.close()


def classify(answer: Answer, where: str) -> Delivery:
    """The delivery result an HTTP answer stands for (see the module table)."""
    status = answer.status
    reason = f"{where} answered {status}" + (f": {_first_line(answer.text)}" if answer.text.strip() else "")
    if 200 <= status < 300:
        return Delivery(Result.DELIVERED)
    if status in (408, 429) or status >= 500:
        return Delivery(Result.RETRY, reason, parse_retry_after(answer.retry_after))
    if status == 410:
        return Delivery(Result.REJECTED, reason + " (endpoint gone: remove or fix this webhook)")
    if 300 <= status < 400:
        return Delivery(Result.REJECTED, reason + " (redirects are not followed: configure the final URL)")
    return Delivery(Result.REJECTED, reason)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date (RFC 9110 10.2.3); else None."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return min(float(text), MAX_RETRY_AFTER_SECS)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # HTTP dates are always GMT
        when = when.replace(tzinfo=UTC)
    delta = when.timestamp() - (time.time() if now is None else now)
    return min(max(0.0, delta), MAX_RETRY_AFTER_SECS)


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:200]
