"""How the GELF HTTP transport reads answers: which status is delivered, retried or rejected, and Retry-After."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from bastion_guard.shipping.base import Result
from bastion_guard.shipping.gelf_http import classify, parse_retry_after

NOW = 1795899600.0


@pytest.mark.parametrize(
    ("status", "result", "stop"),
    [
        (202, Result.DELIVERED, False),
        (200, Result.RETRY, True),  # not a GELF input's answer: something else is listening
        (301, Result.RETRY, True),
        (400, Result.REJECTED, False),
        (413, Result.REJECTED, False),
        (401, Result.RETRY, True),
        (403, Result.RETRY, True),
        (404, Result.RETRY, True),
        (408, Result.RETRY, True),
        (429, Result.RETRY, True),
        (500, Result.RETRY, True),
        (503, Result.RETRY, True),
    ],
)
def test_status_classes(status: int, result: Result, stop: bool) -> None:
    """202 delivers; a bad record (400, 413) is rejected alone; a failing or misconfigured input (5xx, 429,
    401/403/404, redirects) keeps every record waiting and stops the batch."""
    delivery, stopped = classify(status, "Reason", None)
    assert (delivery.result, stopped) == (result, stop)
    if result is not Result.DELIVERED:
        assert delivery.reason.startswith(f"HTTP {status}")


def test_retry_after_seconds_and_http_date() -> None:
    """Retry-After is delay-seconds or an HTTP date; anything else is ignored (the worker's back-off rules)."""
    assert parse_retry_after("120") == 120.0
    date = format_datetime(datetime.fromtimestamp(NOW + 30, UTC), usegmt=True)
    assert parse_retry_after(date, now=NOW) == pytest.approx(30.0)
    assert parse_retry_after(format_datetime(datetime.fromtimestamp(NOW - 30, UTC), usegmt=True), now=NOW) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    delivery, _ = classify(429, "Too Many Requests", "7")
    assert delivery.retry_after_secs == 7.0
