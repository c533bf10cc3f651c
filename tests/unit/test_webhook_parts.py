"""Webhook building blocks: Retry-After, the token bucket, dedup memory, digests and payloads."""

from __future__ import annotations

import json
import re

from bastion_guard.decisions import Decision, Verdict
from bastion_guard.shipping.base import Result
from bastion_guard.shipping.records import Record, RecordKind, action_record, decision_record
from bastion_guard.shipping.secrets import Secret, redact_url
from bastion_guard.shipping.webhook import formats
from bastion_guard.shipping.webhook.digest import build_digest
from bastion_guard.shipping.webhook.ratelimit import TokenBucket
from bastion_guard.shipping.webhook.routing import RecentAlerts
from bastion_guard.shipping.webhook.transport import Answer, classify, parse_retry_after

T0 = 1795899600.0  # 2026-11-28T21:00:00Z


def ban(ip: str, epoch: float = T0, rule: str = "sshd-bruteforce") -> Record:
    """A ban decision's record."""
    return decision_record(Decision(Verdict.BAN, rule, ip, epoch, 3600.0, 12, 1, "12 x auth_failure", ()), "b1")


def test_retry_after_seconds_and_http_dates() -> None:
    """Delta-seconds, IMF-fixdate, obsolete RFC 850 dates; garbage and past dates; a cap of one day."""
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Sat, 28 Nov 2026 21:00:30 GMT", now=T0) == 30.0
    assert parse_retry_after("Saturday, 28-Nov-26 21:01:00 GMT", now=T0) == 60.0
    assert parse_retry_after("Sat, 28 Nov 2026 20:00:00 GMT", now=T0) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-5") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("99999999") == 86400.0


def test_status_classification() -> None:
    """2xx delivered; 408/429/5xx retried; 410, 3xx and other 4xx rejected."""
    expected = {200: Result.DELIVERED, 204: Result.DELIVERED, 301: Result.REJECTED, 400: Result.REJECTED,
                401: Result.REJECTED, 404: Result.REJECTED, 408: Result.RETRY, 410: Result.REJECTED,
                429: Result.RETRY, 500: Result.RETRY, 503: Result.RETRY}
    for status, result in expected.items():
        assert classify(Answer(status, None, "x"), "https://h/…").result is result, status


def test_token_bucket_refills_at_its_rate() -> None:
    """Starts full; one token per 1/rate seconds after that; never more than the burst."""
    now = [0.0]
    bucket = TokenBucket(2.0, 3, lambda: now[0])
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    assert bucket.wait_secs() == 0.5
    now[0] += 0.5
    assert bucket.take()
    now[0] += 100
    assert bucket.available() == 3


def test_recent_alerts_use_event_time_and_forget() -> None:
    """Seen within the window around the epoch; old keys are pruned as time moves on."""
    recent = RecentAlerts(60.0)
    key = ("decision", "r", "203.0.113.7", "ban")
    recent.remember(key, T0)
    assert recent.seen(key, T0 + 59)
    assert not recent.seen(key, T0 + 60)
    recent.remember(("decision", "r", "other", "ban"), T0 + 1000)
    assert not recent.seen(key, T0 + 1)  # pruned


def test_digest_groups_counts_and_stable_id() -> None:
    """Biggest group first, examples capped, the id the same for the same records in any order."""
    records = [ban(f"10.0.0.{i}", T0 + i) for i in range(30)] + [ban("10.9.9.9", T0, rule="recidive")]
    digest = build_digest(records)
    assert digest.total == 31
    assert [line.describe() for line in digest.lines] == ["30 more bans by sshd-bruteforce in the last 29s",
                                                          "1 more bans by recidive in the last 1s"]
    assert digest.lines[0].examples == ("10.0.0.0", "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4")
    assert build_digest(list(reversed(records))).id == digest.id


def test_slack_message_matches_the_conventions_example() -> None:
    """Text fallback plus a section and a context block, as in the conventions' ban example."""
    message = formats.slack_message(ban("203.0.113.7"))
    assert message["text"] == "b1: banned 203.0.113.7 for 1h (rule sshd-bruteforce: 12 x auth_failure)"
    section = message["blocks"][0]["text"]["text"]
    assert section == "*Banned* `203.0.113.7` on *b1*\nrule `sshd-bruteforce` · 12 x auth_failure · expires in 1h"
    assert message["blocks"][1]["type"] == "context"


def test_slack_code_spans_cannot_be_broken_out_of() -> None:
    """Backticks and newlines inside a user name cannot end the code span; <, >, & are escaped."""
    assert formats.slack_code("a`b\n<!here>&") == "`a'b &lt;!here&gt;&amp;`"


def test_generic_payload_and_key_summary() -> None:
    """Standard Webhooks payload convention; a key summary reads as its summary."""
    summary = action_record(RecordKind.KEY, T0, "b1", action="offboarded", summary="alice offboarded: 2 keys")
    message = formats.generic_message(summary)
    assert message["type"] == "key.offboarded"
    assert message["timestamp"] == "2026-11-28T21:00:00.000Z"
    assert message["data"]["summary"] == "alice offboarded: 2 keys"
    assert formats.headline(summary) == "alice offboarded: 2 keys"
    json.dumps(message)


def test_alert_without_expiry_ends_after_the_ttl() -> None:
    """Alerts have no ban expiry: endsAt = startsAt + alert_ttl_secs; a manual ban ends after its duration."""
    decision = Decision(Verdict.ALERT, "root-login", "203.0.113.7", T0, None, 1, 0, "1 x auth_success", (),
                        user="root")
    (alert,) = formats.alertmanager_alerts([decision_record(decision, "b1")], 600.0)
    assert alert["endsAt"] == "2026-11-28T21:10:00.000Z"
    assert alert["annotations"]["user"] == "root"
    manual = action_record(RecordKind.BAN, T0, "b1", target="203.0.113.9", rule="manual", duration_secs=7200.0,
                           reason="seen in the SIEM", origin="bastionctl")
    (banned,) = formats.alertmanager_alerts([manual], 600.0)
    assert banned["labels"]["alertname"] == "BastionManualBan"
    assert banned["endsAt"] == "2026-11-28T23:00:00.000Z"
    assert formats.headline(manual) == "banned 203.0.113.9 by hand (seen in the SIEM)"


def test_secret_and_url_redaction() -> None:
    """A Secret shows nothing of itself; a URL is shown as scheme and host only."""
    secret = Secret("https://hooks.slack.com/services/T1/B2/token")
    assert "token" not in repr(secret) + str(secret) + f"{secret}"
    assert redact_url(secret.reveal()) == "https://hooks.slack.com/…"
    assert redact_url("http://127.0.0.1:9093/api/v2/alerts") == "http://127.0.0.1:9093/…"


def test_slack_digest_stays_within_block_kit_limits() -> None:
    """Many rules with long hostile targets: the section stays under 3000 characters and still counts all."""
    records = [decision_record(Decision(Verdict.ALERT, f"rule-{r}", f"<@U{r}>" + "x" * 150, T0 + i, None, 1, 0,
                                        "1 x auth_failure", ()), "b1")
               for r in range(40) for i in range(3)]
    message = formats.slack_digest(build_digest(records), "b1")
    text = message["blocks"][0]["text"]["text"]
    assert len(text) < 3000
    shown = sum(int(n) for n in re.findall(r"• (\d+) more alerts", text))
    rest = re.search(r"and (\d+) more records of (\d+) other kinds or rules", text)
    assert rest is not None
    assert shown + int(rest.group(1)) == 120
    assert "<" not in text
