"""Webhook sink against protocol test doubles of a generic receiver, Slack and Alertmanager over real HTTPS.

The doubles (``webhook_receiver.py``) verify what the real far ends verify. Rate limits are on a simulated
clock; ``drain`` plays the delivery worker's part of the contract: it hands a batch to the sink, re-sends
only the records answered RETRY after their ``retry_after_secs``, and moves on when the batch is done.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import socket
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from webhook_receiver import ThrowawayCA, WebhookReceiver, make_ca, verify_standard_webhook

from bastion_guard.cli import bastionctl
from bastion_guard.config.yamlsrc import load_documents
from bastion_guard.decisions import Decision, Verdict
from bastion_guard.errors import ConfigError, ConfigProblem, Location
from bastion_guard.rules.fields import Fields
from bastion_guard.shipping.base import Delivery, Result
from bastion_guard.shipping.records import Record, RecordKind, action_record, decision_record
from bastion_guard.shipping.webhook.config import WebhookConfig, parse_config
from bastion_guard.shipping.webhook.sink import WebhookSetupError, WebhookSink, build_webhook

SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
T0 = 1795899600.0
SPRAY = 50_000


class FakeClock:
    """Monotonic time that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> ThrowawayCA:
    made = make_ca(tmp_path_factory.mktemp("ca"))
    if made is None:
        pytest.skip("openssl is not installed (needed to make the receivers' TLS certificates)")
    return made


@pytest.fixture
def receivers(ca: ThrowawayCA) -> Iterator[dict[str, WebhookReceiver]]:
    """One running HTTPS receiver of each kind."""
    running = {kind: WebhookReceiver(kind, secret=SECRET) for kind in ("generic", "slack", "alertmanager")}
    for receiver in running.values():
        receiver.start(ca.server_context)
    yield running
    for receiver in running.values():
        receiver.stop()


def webhook_config(tmp_path: Path, text: str) -> WebhookConfig:
    """Parse a ``sinks:`` entry written as YAML, as the daemon would; fail the test on any problem."""
    path = tmp_path / "bastiond.yaml"
    path.write_text(text)
    problems: list[ConfigProblem] = []
    entry = Fields(load_documents(path)[0], "sinks[0]", problems, Location(str(path)))
    entry.get("type", str, "")
    entry.get("name", str, "")
    config = parse_config(entry)
    if problems:
        raise ConfigError(problems)
    return config


def make_sink(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receiver: WebhookReceiver, ca: ThrowawayCA,
              clock: FakeClock, extra: str = "") -> WebhookSink:
    """A sink of the receiver's format: URL from a 0600 file, signing secret from the environment."""
    url_file = tmp_path / f"{receiver.kind}-url"
    url_file.write_text(receiver.url + "\n")
    url_file.chmod(0o600)
    monkeypatch.setenv("BG_TEST_WEBHOOK_SECRET", SECRET)
    secret = "secret_env: BG_TEST_WEBHOOK_SECRET\n" if receiver.kind == "generic" else ""
    config = webhook_config(tmp_path, f"type: webhook\nname: {receiver.kind}\nformat: {receiver.kind}\n"
                            f"url_file: {url_file}\nca_file: {ca.ca_file}\n{secret}{extra}")
    return build_webhook(config, receiver.kind, clock=clock)


def ban(ip: str, epoch: float = T0, rule: str = "sshd-bruteforce", user: str | None = "root") -> Record:
    decision = Decision(Verdict.BAN, rule, ip, epoch, 3600.0, 12, 1, "12 x auth_failure within 10m", (), user=user)
    return decision_record(decision, "bastion1")


def alert(target: str, epoch: float = T0, rule: str = "root-login", user: str | None = "root") -> Record:
    decision = Decision(Verdict.ALERT, rule, target, epoch, None, 1, 0, "1 x auth_success", (), user=user)
    return decision_record(decision, "bastion1")


def drain(sink: WebhookSink, records: Sequence[Record], clock: FakeClock, batch: int = 500) -> dict[str, Delivery]:
    """Deliver like the worker: per batch, re-send only RETRY/HELD records after their Retry-After."""
    final: dict[str, Delivery] = {}
    for start in range(0, len(records), batch):
        pending = list(records[start:start + batch])
        for _round in range(10_000):
            if not pending:
                break
            retry: list[Record] = []
            wait = 0.0
            for record, delivery in zip(pending, sink.deliver(pending), strict=True):
                if delivery.result in (Result.RETRY, Result.HELD):
                    retry.append(record)
                    wait = max(wait, delivery.retry_after_secs or 1.0)
                else:
                    final[record.id] = delivery
            clock.advance(wait)
            pending = retry
        assert not pending, "the batch never finished"
    return final


# --- generic: signatures ---------------------------------------------------------------------------------


def test_generic_message_is_signed_the_standard_webhooks_way(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receivers: dict[str, WebhookReceiver], ca: ThrowawayCA,
) -> None:
    """The receiver verifies the signature from the spec; webhook-id is the record id; a tampered body fails."""
    receiver = receivers["generic"]
    sink = make_sink(tmp_path, monkeypatch, receiver, ca, FakeClock())
    record = ban("203.0.113.7")
    assert [d.result for d in sink.deliver([record])] == [Result.DELIVERED]
    (request,) = receiver.accepted
    assert request.headers["webhook-id"] == record.id
    assert request.headers["webhook-signature"].startswith("v1,")
    payload = request.json()
    assert payload["type"] == "ban.created"
    assert payload["data"]["target"] == "203.0.113.7"
    assert verify_standard_webhook(SECRET, request.headers, request.body)
    tampered = request.body.replace(b"203.0.113.7", b"203.0.113.8")
    assert not verify_standard_webhook(SECRET, request.headers, tampered)
    other_id = {**request.headers, "webhook-id": "0" * 32}
    assert not verify_standard_webhook(SECRET, other_id, request.body)


def test_a_receiver_with_another_key_rejects(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receivers: dict[str, WebhookReceiver], ca: ThrowawayCA,
) -> None:
    """401 from a receiver that cannot verify the signature is a rejection (dead letter), not a retry."""
    receiver = receivers["generic"]
    receiver.secret = "whsec_" + base64.b64encode(b"\x01" * 32).decode()
    sink = make_sink(tmp_path, monkeypatch, receiver, ca, FakeClock())
    (delivery,) = sink.deliver([ban("203.0.113.7")])
    assert delivery.result is Result.REJECTED
    assert "401" in delivery.reason
    assert not receiver.accepted



def test_rotation_signs_with_every_key_and_github_style_is_optional(
        tmp_path: Path, receivers: dict[str, WebhookReceiver], ca: ThrowawayCA,
) -> None:
    """Two keys in the secret file: two v1 signatures, so receivers on the old or the new key both verify;
    github_signature adds X-Hub-Signature-256 (HMAC of the raw body, first key) for GitHub-style checks."""
    receiver = receivers["generic"]
    new_secret = "whsec_" + base64.b64encode(b"\x02" * 48).decode()
    secret_file = tmp_path / "hook.key"
    secret_file.write_text(f"{SECRET}\n{new_secret}\n")
    secret_file.chmod(0o600)
    config = webhook_config(tmp_path, f"format: generic\nurl: {receiver.url}\nsecret_file: {secret_file}\n"
                            f"ca_file: {ca.ca_file}\ngithub_signature: true\n")
    sink = build_webhook(config, "rotating")
    assert [d.result for d in sink.deliver([ban("203.0.113.7")])] == [Result.DELIVERED]
    (request,) = receiver.accepted
    assert len(request.headers["webhook-signature"].split()) == 2
    assert verify_standard_webhook(new_secret, request.headers, request.body)
    assert verify_standard_webhook(SECRET, request.headers, request.body)
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    expected = "sha256=" + hmac.new(key, request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["x-hub-signature-256"], expected)


# --- retries ---------------------------------------------------------------------------------------------


def test_503_then_200_is_retried_with_the_same_id(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receivers: dict[str, WebhookReceiver], ca: ThrowawayCA,
) -> None:
    """A 5xx is RETRY; the retry carries the same webhook-id, so the receiver can de-duplicate."""
    receiver = receivers["generic"]
    receiver.script.append((503, {}, b"busy"))
    sink = make_sink(tmp_path, monkeypatch, receiver, ca, FakeClock())
    record = ban("203.0.113.7")
    (first,) = sink.deliver([record])
    assert first.result is Result.RETRY
    assert "503" in first.reason
    (second,) = sink.deliver([record])
    assert second.result is Result.DELIVERED
    assert [r.headers["webhook-id"] for r in receiver.requests] == [record.id, record.id]


@pytest.mark.parametrize("retry_after", ["7", "Wed, 21 Oct 2099 07:28:00 GMT"])
def test_429_passes_retry_after_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receivers: dict[str, WebhookReceiver], ca: ThrowawayCA,
        retry_after: str,
) -> None:
    """Slack's 429 comes with Retry-After (seconds, or an HTTP date): the worker is told how long to wait."""
    receiver = receivers["slack"]
    receiver.script.append((429, {"Retry-After": retry_after}, b"rate_limited"))
    sink = make_sink(tmp_path, monkeypatch, receiver, ca, FakeClock())
    (first,) = sink.deliver([alert("203.0.113.7")])
    assert first.result is Result.RETRY
    assert first.retry_after_secs is not None
    if retry_after == "7":
        assert first.retry_after_secs == 7.0
    else:  # capped at a day: a server cannot park alerts for decades
        assert first.retry_after_secs == 86400.0
    (second,) = sink.deliver([alert("203.0.113.7")])
    assert second.result is Result.DELIVERED


def test_connection_refused_is_retry_and_410_disables(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receivers: dict[str, WebhookReceiver], ca: ThrowawayCA,
) -> None:
    """Down = RETRY (the spool keeps the record); 410 Gone = REJECTED, and the endpoint is not tried again."""
    receiver = receivers["slack"]
    sink = make_sink(tmp_path, monkeypatch, receiver, ca, FakeClock())
    receiver.script.append((410, {}, b"channel_is_archived"))
    gone = sink.deliver([alert("203.0.113.7"), alert("203.0.113.77", rule="revoked-key-tried")])
    assert [d.result for d in gone] == [Result.REJECTED, Result.REJECTED]
    assert "endpoint gone" in gone[1].reason
    (after,) = sink.deliver([alert("203.0.113.8")])
    assert after.result is Result.REJECTED
    assert len(receiver.requests) == 1
    assert not sink.health().ok
    receiver.stop()
    down = make_sink(tmp_path, monkeypatch, receiver, ca, FakeClock())
    (refused,) = down.deliver([alert("203.0.113.9")])
    assert refused.result is Result.RETRY
    assert "cannot post" in refused.reason


def test_tls_is_verified(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receivers: dict[str, WebhookReceiver], ca: ThrowawayCA,
) -> None:
    """Without the receiver's CA the certificate does not verify: nothing is sent, the record waits."""
    receiver = receivers["slack"]
    sink = make_sink(tmp_path, monkeypatch, receiver, ca, FakeClock())
    assert sink.health().ok
    config = webhook_config(tmp_path, f"format: slack\nurl_file: {tmp_path / 'slack-url'}\n")
    unverified = build_webhook(config, "no-ca")
    (delivery,) = unverified.deliver([alert("203.0.113.7")])
    assert delivery.result is Result.RETRY
    assert "TLS verification" in delivery.reason
    assert not unverified.health().ok
    assert not receiver.requests


# --- routing and dedup -----------------------------------------------------------------------------------


def test_routing_selects_kinds_verdicts_and_rules(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receivers: dict[str, WebhookReceiver], ca: ThrowawayCA,
) -> None:
    """Default: decisions and key summaries; never raw events; rule patterns and verdicts filter decisions."""
    receiver = receivers["generic"]
    sink = make_sink(tmp_path, monkeypatch, receiver, ca, FakeClock(), "rules: [root-*, revoked-key-tried]\n")
    event = Record("e" * 32, RecordKind.EVENT, T0, {"kind": "auth_failure"})
    summary = action_record(RecordKind.KEY, T0, "bastion1", action="offboarded", user="alice",
                            summary="alice offboarded: 2 keys revoked, 3 targets rotated, 0 failed")
    step = action_record(RecordKind.KEY, T0, "bastion1", action="krl_updated", user="alice")
    records = [event, ban("203.0.113.7"), alert("203.0.113.8"), summary, step]
    results = [d.result for d in sink.deliver(records)]
    assert results == [Result.SKIPPED, Result.SKIPPED, Result.DELIVERED, Result.DELIVERED, Result.SKIPPED]
    assert [r.json()["type"] for r in receiver.accepted] == ["alert.created", "key.offboarded"]


def test_the_same_alert_is_sent_once_within_dedup_secs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receivers: dict[str, WebhookReceiver], ca: ThrowawayCA,
) -> None:
    """Same rule+target+verdict within dedup_secs (event time): one message, in one batch or across batches."""
    receiver = receivers["slack"]
    sink = make_sink(tmp_path, monkeypatch, receiver, ca, FakeClock(), "dedup_secs: 10m\n")
    first = [alert("203.0.113.7", T0), alert("203.0.113.7", T0 + 1), alert("203.0.113.8", T0 + 2)]
    assert [d.result for d in sink.deliver(first)] == [Result.DELIVERED, Result.SKIPPED, Result.DELIVERED]
    later = [alert("203.0.113.7", T0 + 300), ban("203.0.113.7", T0 + 300), alert("203.0.113.7", T0 + 900)]
    assert [d.result for d in sink.deliver(later)] == [Result.SKIPPED, Result.DELIVERED, Result.DELIVERED]
    assert len(receiver.accepted) == 4


def test_a_repeat_shares_the_fate_of_its_first(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receivers: dict[str, WebhookReceiver], ca: ThrowawayCA,
) -> None:
    """If the first of two repeats fails, the repeat is not skipped: it waits with it."""
    receiver = receivers["slack"]
    receiver.script.append((500, {}, b"oops"))
    sink = make_sink(tmp_path, monkeypatch, receiver, ca, FakeClock())
    results = sink.deliver([alert("203.0.113.7", T0), alert("203.0.113.7", T0 + 1)])
    assert [d.result for d in results] == [Result.RETRY, Result.RETRY]


# --- rate limits and digests -----------------------------------------------------------------------------


def test_a_ban_spray_becomes_digests_and_nothing_vanishes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receivers: dict[str, WebhookReceiver], ca: ThrowawayCA,
) -> None:
    """50,000 bans: a few messages, then digests at the rate limit; every record covered exactly once."""
    receiver = receivers["generic"]
    clock = FakeClock()
    sink = make_sink(tmp_path, monkeypatch, receiver, ca, clock,
                     "rate_limit: {per_sec: 1, burst: 5}\ndigest_secs: 10s\n")
    records = [ban(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", T0 + i * 0.01) for i in range(SPRAY)]
    records.insert(SPRAY // 2, alert("198.51.100.1", T0 + 250))  # a root login amid the spray
    started = clock.now
    final = drain(sink, records, clock)
    assert Counter(d.result for d in final.values()) == Counter({Result.DELIVERED: SPRAY + 1})
    messages = receiver.accepted
    assert len(messages) <= 5 + (clock.now - started) * 1 + 1  # the token bucket's bound
    assert len(messages) < 120  # 50,000 bans must not become 50,000 messages
    covered = Counter[str]()
    for message in messages:
        payload = message.json()
        if payload["type"] == "digest":
            covered.update(payload["data"]["record_ids"])
            assert message.headers["webhook-id"] == payload["data"]["id"]
        else:
            covered[payload["data"]["id"]] += 1
    assert covered == Counter(record.id for record in records)  # all of them, each once
    assert any(m.json()["type"] == "alert.created" for m in messages)  # the root login had its own message
    assert sink.stats.sent + sink.stats.digested == SPRAY + 1
    assert sink.stats.digests == sum(1 for m in messages if m.json()["type"] == "digest")


def test_slack_digest_counts_in_words(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receivers: dict[str, WebhookReceiver], ca: ThrowawayCA,
) -> None:
    """A Slack digest says "N more bans by RULE in the last ..." with examples, and the Ns add up."""
    receiver = receivers["slack"]
    clock = FakeClock()
    sink = make_sink(tmp_path, monkeypatch, receiver, ca, clock)
    records = [ban(f"10.0.{i >> 8}.{i & 255}", T0 + i * 0.05) for i in range(2000)]
    drain(sink, records, clock)
    digests = [m.json() for m in receiver.accepted if m.json()["text"].find("rate limit reached") >= 0]
    counted = 0
    for digest in digests:
        text = digest["blocks"][0]["text"]["text"]
        match = re.search(r"([\d,]+) more bans by sshd-bruteforce in the last \w+: `10\.0\.", text)
        assert match, text
        counted += int(match.group(1).replace(",", ""))
    singles = len(receiver.accepted) - len(digests)
    assert counted + singles == 2000
    assert len(receiver.accepted) < 20


def test_a_restart_loses_no_pending_digest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receivers: dict[str, WebhookReceiver], ca: ThrowawayCA,
) -> None:
    """Records held for the next digest are HELD (still in the spool), never DELIVERED before a message
    covers them; a new sink after a restart sends them; a re-sent digest keeps its webhook-id."""
    receiver = receivers["generic"]
    clock = FakeClock()
    sink = make_sink(tmp_path, monkeypatch, receiver, ca, clock, "digest_secs: 60s\n")
    first = [ban(f"10.1.0.{i}", T0 + i) for i in range(40)]
    assert all(d.result is Result.DELIVERED for d in sink.deliver(first))
    held = [ban(f"10.2.0.{i}", T0 + 100 + i) for i in range(40)]
    answers = sink.deliver(held)
    assert all(d.result is Result.HELD and d.retry_after_secs for d in answers)
    sent_before = len(receiver.accepted)
    # crash: the sink and its memory are gone; the spool still has ``held``
    restarted = make_sink(tmp_path, monkeypatch, receiver, ca, FakeClock(), "digest_secs: 60s\n")
    assert all(d.result is Result.DELIVERED for d in restarted.deliver(held))
    covered = set()
    for message in receiver.accepted[sent_before:]:
        data = message.json()["data"]
        covered.update(data.get("record_ids", [data["id"]]))
    assert covered == {record.id for record in held}
    digest_id = receiver.accepted[-1].headers["webhook-id"]
    again = make_sink(tmp_path, monkeypatch, receiver, ca, FakeClock(), "digest_secs: 60s\n")
    again.deliver(held)  # a crash after the digest was sent but before the spool heard of it
    assert receiver.accepted[-1].headers["webhook-id"] == digest_id


def test_a_failed_digest_delivers_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receivers: dict[str, WebhookReceiver], ca: ThrowawayCA,
) -> None:
    """When the digest message fails, every record it would have covered is RETRY."""
    receiver = receivers["slack"]
    sink = make_sink(tmp_path, monkeypatch, receiver, ca, FakeClock(), "rate_limit: {per_sec: 1, burst: 1}\n")
    receiver.script.append((502, {}, b"bad gateway"))
    results = sink.deliver([ban(f"10.3.0.{i}", T0 + i) for i in range(10)])
    assert [d.result for d in results] == [Result.RETRY] * 10
    assert sink.stats.digested == 0


# --- Slack escaping --------------------------------------------------------------------------------------


def test_hostile_names_cannot_ping_or_link_in_slack(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receivers: dict[str, WebhookReceiver], ca: ThrowawayCA,
) -> None:
    """An attacker-chosen user name with <!channel>, a link and a backtick arrives as inert escaped text."""
    receiver = receivers["slack"]
    sink = make_sink(tmp_path, monkeypatch, receiver, ca, FakeClock())
    hostile = "<!channel> <https://evil.example|log in> & `*x*`<@U123>"
    records = [alert(hostile, rule="departed-user-login", user=hostile), ban("203.0.113.7", user=hostile)]
    assert all(d.result is Result.DELIVERED for d in sink.deliver(records))
    for message in receiver.accepted:
        payload = message.json()
        texts = [payload["text"]] + [b["text"]["text"] for b in payload["blocks"] if b["type"] == "section"]
        for text in texts:
            assert "<" not in text and ">" not in text, text
        assert "&lt;!channel&gt;" in payload["blocks"][0]["text"]["text"]
    assert "&amp;" in receiver.accepted[0].json()["text"]


# --- Alertmanager ----------------------------------------------------------------------------------------


def test_alertmanager_gets_postable_alerts_in_chunks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receivers: dict[str, WebhookReceiver], ca: ThrowawayCA,
) -> None:
    """POST /api/v2/alerts (the path is added to a base URL); labels, annotations, endsAt = ban expiry."""
    receiver = receivers["alertmanager"]
    receiver.url = receiver.url.split("/hooks/")[0]  # a base URL, as operators write it
    sink = make_sink(tmp_path, monkeypatch, receiver, ca, FakeClock())
    records = [ban(f"10.4.{i >> 8}.{i & 255}", T0 + i) for i in range(1200)] + [alert("198.51.100.1")]
    assert all(d.result is Result.DELIVERED for d in sink.deliver(records))
    assert len(receiver.accepted) == 3
    alerts: list[dict[str, Any]] = [a for request in receiver.accepted for a in request.json()]
    assert len(alerts) == 1201
    first = alerts[0]
    assert first["labels"] == {"alertname": "BastionBan", "rule": "sshd-bruteforce", "severity": "warning",
                               "instance": "bastion1", "target": "10.4.0.0"}
    assert first["annotations"]["target"] == "10.4.0.0"
    assert first["annotations"]["user"] == "root"
    assert first["startsAt"] == "2026-11-28T21:00:00.000Z"
    assert first["endsAt"] == "2026-11-28T22:00:00.000Z"
    assert alerts[-1]["labels"]["alertname"] == "BastionAlert"
    assert alerts[-1]["labels"]["severity"] == "critical"


# --- secrets ---------------------------------------------------------------------------------------------


def test_secrets_never_reach_logs_reprs_or_reasons(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receivers: dict[str, WebhookReceiver], ca: ThrowawayCA,
        caplog: pytest.LogCaptureFixture,
) -> None:
    """The Slack token URL and the signing secret appear in no log line, repr or delivery reason."""
    caplog.set_level(logging.DEBUG)
    clock = FakeClock()
    slack, generic = receivers["slack"], receivers["generic"]
    token = slack.url.rsplit("/", 1)[1]
    slack_sink = make_sink(tmp_path, monkeypatch, slack, ca, clock)
    generic_sink = make_sink(tmp_path, monkeypatch, generic, ca, clock)
    reasons: list[str] = []
    slack.script.extend([(500, {}, b"oops"), (404, {}, b"no_service")])
    for sink in (slack_sink, generic_sink):
        for _ in range(3):
            reasons += [d.reason for d in sink.deliver([ban(f"10.5.0.{i}", T0 + i) for i in range(30)])]
        reasons.append(sink.health().detail)
        reasons += [repr(sink), repr(sink.config), str(sink.config)]
    drain(slack_sink, [ban(f"10.6.0.{i}") for i in range(50)], clock)
    slack.stop()
    reasons += [d.reason for d in slack_sink.deliver([alert("203.0.113.99")])]
    everything = caplog.text + "\n".join(reasons)
    assert "rate limit reached" in caplog.text  # the digest log line is there...
    for secret in (token, slack.url, SECRET, SECRET.removeprefix("whsec_")):
        assert secret not in everything  # ...but no secret is


def test_bad_secrets_fail_clearly_without_showing_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """A malformed key or an http URL to another host in url_file is a clear error that hides the value;
    a group-readable secret file is used, with a warning."""
    url_file = tmp_path / "url"
    url_file.write_text("http://192.0.2.10/hooks/sekrit-token\n")
    url_file.chmod(0o644)
    monkeypatch.setenv("BG_TEST_BAD_SECRET", "whsec_not base64 at all sekrit")
    config = webhook_config(tmp_path, f"format: generic\nurl_file: {url_file}\nsecret_env: BG_TEST_BAD_SECRET\n")
    with pytest.raises(WebhookSetupError) as bad_key:
        build_webhook(config, "hook")
    assert "base64" in str(bad_key.value)
    assert "sekrit" not in str(bad_key.value)
    monkeypatch.setenv("BG_TEST_BAD_SECRET", SECRET)
    with caplog.at_level(logging.WARNING), pytest.raises(WebhookSetupError) as bad_url:
        build_webhook(config, "hook")
    assert "must be https://" in str(bad_url.value)
    assert "sekrit" not in str(bad_url.value) + caplog.text
    assert f"secret file {url_file} is readable by group or others" in caplog.text



# --- bastionctl webhook test -----------------------------------------------------------------------------


def test_bastionctl_webhook_test_sends_one_message(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receivers: dict[str, WebhookReceiver], ca: ThrowawayCA,
        capsys: pytest.CaptureFixture[str],
) -> None:
    """The operator's check reads the daemon config, sends a signed test message, and says what happened;
    an unknown name or a bad entry is a located configuration error (exit 2)."""
    receiver = receivers["generic"]
    monkeypatch.setenv("BG_TEST_WEBHOOK_SECRET", SECRET)
    config = tmp_path / "bastiond.yaml"
    config.write_text(f"""\
state_dir: {tmp_path}
sinks:
  - {{type: elasticsearch, name: es, hosts: [https://es.example:9200]}}
  - type: webhook
    name: ops
    format: generic
    url: {receiver.url}
    secret_env: BG_TEST_WEBHOOK_SECRET
    ca_file: {ca.ca_file}
  - type: webhook
    name: broken
    format: slack
    url_env: X
    rate_limt: 3
""")
    assert bastionctl.main(["webhook", "test", "ops", "--config", str(config), "--bastion", "bastion1"]) == 0
    assert "test message accepted" in capsys.readouterr().out
    (request,) = receiver.accepted
    assert verify_standard_webhook(SECRET, request.headers, request.body)
    assert request.json()["type"] == "daemon.webhook_test"
    assert bastionctl.main(["webhook", "test", "nope", "--config", str(config)]) == 2
    assert "no webhook named 'nope'" in capsys.readouterr().err
    assert bastionctl.main(["webhook", "test", "broken", "--config", str(config)]) == 2
    assert f"{config}:14:5: sinks[2].rate_limt: unknown key" in capsys.readouterr().err
    receiver.script.append((503, {"Retry-After": "30"}, b"busy"))
    assert bastionctl.main(["webhook", "test", "ops", "--config", str(config)]) == 1
    assert "503" in capsys.readouterr().err


def test_a_receiver_that_never_answers_times_out_into_retry(tmp_path: Path) -> None:
    """A listener that accepts the connection but never answers: the POST gives up after timeout_secs and
    the record waits in the spool (RETRY)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)  # the kernel completes the handshake; nobody ever reads or answers
        port = silent.getsockname()[1]
        url = f"http://127.0.0.1:{port}/hook"
        config = webhook_config(tmp_path, f"format: alertmanager\nurl: {url}\ntimeout_secs: 0.2\n")
        sink = build_webhook(config, "silent")
        (delivery,) = sink.deliver([ban("203.0.113.7")])
    assert delivery.result is Result.RETRY
    assert delivery.reason == f"timeout after 0.2s talking to http://127.0.0.1:{port}/…"
