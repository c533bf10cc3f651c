"""The webhook sink: route, de-duplicate, rate-limit, coalesce into digests, sign and send.

How a batch is planned (``deliver``):

1. records not selected for this destination are ``SKIPPED`` (:mod:`.routing`);
2. a record repeating an alert (same rule, target and verdict) sent within ``dedup_secs`` of event time is
   ``SKIPPED``; repeats inside the batch share the first one's fate;
3. the rest spend tokens of the destination's bucket: one message each while tokens last, rarest groups
   first (so a root login amid a ban spray is its own message). What does not fit, and anything of a group
   that overflowed in the last ``digest_secs`` ("hot"), goes into one digest message (one token), at most
   one digest per ``digest_secs``. Alertmanager takes many alerts per request, so there every request
   carries a whole chunk and no digest is needed.

Restart safety: a record is ``DELIVERED`` only when a message that covers it was accepted. Records waiting
for a token or for the next digest are answered ``HELD`` with ``retry_after_secs`` set to when they can go,
so they stay in the durable spool; a crash loses nothing, and the digest rebuilt after it has the same id.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bastion_guard.errors import BastionError
from bastion_guard.shipping.base import Delivery, Health, Result, Sink
from bastion_guard.shipping.records import Record, RecordKind, action_record
from bastion_guard.shipping.secrets import Secret, SecretError, redact_url
from bastion_guard.shipping.webhook import formats, signing
from bastion_guard.shipping.webhook.config import Format, WebhookConfig, check_url
from bastion_guard.shipping.webhook.digest import build_digest
from bastion_guard.shipping.webhook.ratelimit import TokenBucket
from bastion_guard.shipping.webhook.routing import Group, RecentAlerts, dedup_key, digest_group, selection_problem
from bastion_guard.shipping.webhook.transport import Sent, Transport

log = logging.getLogger("bastiond.webhook")

ALERTS_PER_REQUEST = 500  # Alertmanager: keeps a request well under typical proxy body limits
ALERTMANAGER_PATH = "/api/v2/alerts"
TEST_ALERT_SECS = 300.0  # a test alert resolves by itself after five minutes
_UNPLANNED = Delivery(Result.RETRY, "not planned (a bug): sent again later")  # every record is answered above


class WebhookSetupError(BastionError):
    """The webhook cannot be built (unreadable secret, bad URL in a url_file); never shows the secret."""


class Poster(Protocol):
    """What sends one message (:class:`Transport`; its ``where`` is the redacted destination)."""

    where: str

    def post(self, body: bytes, headers: dict[str, str]) -> Sent:
        """Send ``body``; never raises."""
        ...

    def probe(self) -> Health:
        """Connect (and verify TLS) without sending anything."""
        ...


@dataclass
class WebhookStats:
    """Counters for status and metrics: every record is in exactly one of sent, digested, duplicate,
    skipped, or still pending (held for a token/digest, or failed)."""

    messages: int = 0  # accepted single-record (or Alertmanager chunk) messages
    digests: int = 0  # accepted digest messages
    sent: int = 0  # records covered by an accepted single message / chunk
    digested: int = 0  # records covered by an accepted digest
    duplicates: int = 0  # records skipped as repeats within dedup_secs
    skipped: int = 0  # records not routed here
    held: int = 0  # answers of HELD because of the rate limit (the same record may be held many times)


class WebhookSink:
    """A :class:`~bastion_guard.shipping.base.Sink` for one webhook destination."""

    # A digest can only cover the batch it is handed, so the worker should hand this sink big batches:
    # with 500-record batches a 50,000-ban spray is 100 digests, with 10,000 it is 5.
    preferred_batch_size = 10_000

    def __init__(self, name: str, config: WebhookConfig, poster: Poster, signing_keys: tuple[bytes, ...] = (), *,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self.name = name
        self.config = config
        self.stats = WebhookStats()
        self._poster = poster
        self._keys = signing_keys
        self._clock = clock
        self._wall = wall
        self._bucket = TokenBucket(config.rate_limit.per_sec, config.rate_limit.burst, clock)
        self._recent = RecentAlerts(config.dedup_secs)
        self._hot: dict[Group, float] = {}  # groups that overflowed recently: they go to digests
        self._next_digest = float("-inf")
        self._gone = ""  # set when the endpoint answered 410: it was removed, stop sending

    def __repr__(self) -> str:
        return f"WebhookSink({self.name!r}, {self.config.format}, {self._poster.where})"

    # --- the Sink protocol -----------------------------------------------------------------------------------

    def deliver(self, records: Sequence[Record]) -> Sequence[Delivery]:
        """Plan and send ``records``; one :class:`Delivery` each, in order (see the module docstring)."""
        results: list[Delivery | None] = [None] * len(records)
        wanted: list[int] = []
        for index, record in enumerate(records):
            problem = selection_problem(self.config, record)
            if problem:
                results[index] = Delivery(Result.SKIPPED, problem)
                self.stats.skipped += 1
            elif self._gone:
                results[index] = Delivery(Result.REJECTED, self._gone)
            else:
                wanted.append(index)
        primaries, repeats = self._split_repeats(records, wanted, results)
        if self.config.format is Format.ALERTMANAGER:
            self._send_chunks(records, primaries, results)
        else:
            self._send_singly_or_digest(records, primaries, results)
        for index, first in repeats.items():
            outcome = results[first] or _UNPLANNED
            if outcome.result is Result.DELIVERED:
                results[index] = Delivery(Result.SKIPPED, f"repeat of record {records[first].id}")
                self.stats.duplicates += 1
            else:
                results[index] = outcome
        for index in primaries:
            key = dedup_key(records[index])
            answered = results[index]
            if key is not None and answered is not None and answered.result is Result.DELIVERED:
                self._recent.remember(key, records[index].epoch)
        return [outcome or _UNPLANNED for outcome in results]

    def health(self) -> Health:
        """Connect to the receiver and verify its certificate, sending nothing (Slack has no ping)."""
        if self._gone:
            return Health(False, self._gone)
        return self._poster.probe()

    def close(self) -> None:
        """Nothing to release: every message uses its own connection."""

    # --- operator test ---------------------------------------------------------------------------------------

    def send_test(self, bastion: str) -> Delivery:
        """Send one test message now, outside routing, dedup and rate limits (``bastionctl webhook test``)."""
        now = self._wall()
        record = action_record(RecordKind.AUDIT, now, bastion, action="webhook_test",
                               summary=f"test message for webhook {self.name} from bastionctl")
        if self.config.format is Format.ALERTMANAGER:
            return self._post(formats.alertmanager_alerts([record], TEST_ALERT_SECS), record.id)
        if self.config.format is Format.SLACK:
            return self._post(formats.slack_message(record), record.id)
        return self._post(formats.generic_message(record), record.id)

    # --- planning --------------------------------------------------------------------------------------------

    def _split_repeats(self, records: Sequence[Record], wanted: list[int], results: list[Delivery | None],
                       ) -> tuple[list[int], dict[int, int]]:
        """Primaries to send, and repeats inside the batch -> their primary's index."""
        primaries: list[int] = []
        repeats: dict[int, int] = {}
        first: dict[tuple[str, str, str, str], int] = {}
        for index in wanted:
            record = records[index]
            key = dedup_key(record) if self.config.dedup_secs > 0 else None
            if key is None:
                primaries.append(index)
            elif self._recent.seen(key, record.epoch):
                results[index] = Delivery(Result.SKIPPED, f"repeat within dedup_secs ({self.config.dedup_secs:g}s)")
                self.stats.duplicates += 1
            elif key in first:
                repeats[index] = first[key]
            else:
                first[key] = index
                primaries.append(index)
        return primaries, repeats

    def _send_singly_or_digest(self, records: Sequence[Record], primaries: list[int],
                               results: list[Delivery | None]) -> None:
        if not primaries:
            return
        now = self._clock()
        tokens = self._bucket.available()
        if tokens == 0:
            self._hold(primaries, results, self._bucket.wait_secs(), "rate limit: waiting for a message token")
            return
        sizes = Counter(digest_group(records[index]) for index in primaries)
        hot = {i for i in primaries if self._hot.get(digest_group(records[i]), float("-inf")) > now}
        cool = sorted((i for i in primaries if i not in hot), key=lambda i: (sizes[digest_group(records[i])], i))
        budget = len(cool) if len(cool) <= tokens else tokens - 1  # keep a token for the digest
        singles, overflow = cool[:budget], sorted(hot.union(cool[budget:]))
        failure = self._send_singles(records, singles, results)
        if failure is not None:
            for index in overflow:
                results[index] = failure
            return
        if overflow:
            # A group stays hot until a whole digest interval passed after the next digest without it
            # overflowing: held records are marked before they wait one interval for that digest.
            for index in overflow:
                self._hot[digest_group(records[index])] = now + 2 * self.config.digest_secs
            self._send_digest(records, overflow, results, now)

    def _send_singles(self, records: Sequence[Record], singles: list[int],
                      results: list[Delivery | None]) -> Delivery | None:
        """Send one message per record; on a transient failure stop and return it (the rest share it)."""
        for position, index in enumerate(singles):
            if not self._bucket.take():  # cannot happen after available(); kept so a bug holds, never floods
                self._hold(singles[position:], results, self._bucket.wait_secs(), "rate limit")
                return Delivery(Result.HELD, "rate limit", self._bucket.wait_secs())
            record = records[index]
            message = (formats.slack_message(record) if self.config.format is Format.SLACK
                       else formats.generic_message(record))
            outcome = self._post(message, record.id)
            results[index] = outcome
            if outcome.result is Result.DELIVERED:
                self.stats.messages += 1
                self.stats.sent += 1
            elif outcome.result is Result.RETRY:
                for rest in singles[position + 1:]:
                    results[rest] = outcome
                return outcome
        return None

    def _send_digest(self, records: Sequence[Record], overflow: list[int], results: list[Delivery | None],
                     now: float) -> None:
        if now < self._next_digest:
            self._hold(overflow, results, self._next_digest - now, "rate limit: held for the next digest")
            return
        if not self._bucket.take():
            self._hold(overflow, results, self._bucket.wait_secs(), "rate limit: waiting for a token for the digest")
            return
        digest = build_digest([records[index] for index in overflow])
        bastion = str(records[overflow[0]].body.get("bastion", ""))
        message = (formats.slack_digest(digest, bastion) if self.config.format is Format.SLACK
                   else formats.generic_digest(digest))
        outcome = self._post(message, digest.id)
        if outcome.result is Result.DELIVERED:
            self._next_digest = now + self.config.digest_secs
            self.stats.digests += 1
            self.stats.digested += digest.total
            log.info("webhook %s: rate limit reached, digest of %d records sent (%s)", self.name, digest.total,
                     "; ".join(line.describe() for line in digest.lines))
            outcome = Delivery(Result.DELIVERED, f"in digest {digest.id}")
        for index in overflow:
            results[index] = outcome

    def _send_chunks(self, records: Sequence[Record], primaries: list[int], results: list[Delivery | None]) -> None:
        """Alertmanager: whole chunks of alerts per request, each request one token."""
        for start in range(0, len(primaries), ALERTS_PER_REQUEST):
            chunk = primaries[start:start + ALERTS_PER_REQUEST]
            if not self._bucket.take():
                self._hold(primaries[start:], results, self._bucket.wait_secs(), "rate limit: waiting for a token")
                return
            alerts = formats.alertmanager_alerts([records[i] for i in chunk], self.config.alert_ttl_secs)
            outcome = self._post(alerts, build_digest([records[i] for i in chunk]).id)
            for index in chunk:
                results[index] = outcome
            if outcome.result is Result.DELIVERED:
                self.stats.messages += 1
                self.stats.sent += len(chunk)
            elif outcome.result is Result.RETRY:
                for index in primaries[start + len(chunk):]:
                    results[index] = outcome
                return

    def _hold(self, indexes: Sequence[int], results: list[Delivery | None], wait: float, why: str) -> None:
        self.stats.held += len(indexes)
        for index in indexes:
            results[index] = Delivery(Result.HELD, why, max(wait, 0.001))

    # --- sending ---------------------------------------------------------------------------------------------

    def _post(self, message: Any, message_id: str) -> Delivery:
        if self._gone:  # answered 410 earlier in this batch: send nothing more there
            return Delivery(Result.REJECTED, self._gone)
        body = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        headers: dict[str, str] = {}
        if self._keys:
            headers |= signing.standard_headers(self._keys, message_id, int(self._wall()), body)
            if self.config.github_signature:
                headers |= signing.github_header(self._keys[0], body)
        sent = self._poster.post(body, headers)
        if sent.status == 410:  # Standard Webhooks: Gone means disable the endpoint
            self._gone = sent.delivery.reason
            log.error("webhook %s: %s; records for it are dead-lettered until the configuration is fixed",
                      self.name, sent.delivery.reason)
        return sent.delivery


def build(config: WebhookConfig, name: str, *, clock: Callable[[], float] = time.monotonic,
          wall: Callable[[], float] = time.time) -> Sink:
    """The sink for a validated entry: reads the URL and signing secret now (at daemon start)."""
    return build_webhook(config, name, clock=clock, wall=wall)


def build_webhook(config: WebhookConfig, name: str, *, clock: Callable[[], float] = time.monotonic,
                  wall: Callable[[], float] = time.time) -> WebhookSink:
    """:func:`build` with the concrete type (``bastionctl webhook test`` and tests use ``send_test``/``stats``)."""
    try:
        url = config.url_secret.load() if config.url_secret is not None else Secret(config.url or "")
        keys = signing.decode_secrets(config.signing_secret.load().reveal()) if config.signing_secret else ()
    except (SecretError, signing.SigningKeyError) as error:
        raise WebhookSetupError(f"webhook {name}: {error}") from None
    problem = check_url(url.reveal())
    if problem:
        where = config.url_secret.describe() if config.url_secret else "url"
        raise WebhookSetupError(f"webhook {name}: the URL in {where} {problem}")
    if config.format is Format.ALERTMANAGER and not url.reveal().rstrip("/").endswith(ALERTMANAGER_PATH):
        url = Secret(url.reveal().rstrip("/") + ALERTMANAGER_PATH)
    transport = Transport(url, ca_file=config.ca_file, timeout_secs=config.timeout_secs)
    log.debug("webhook %s: %s format to %s", name, config.format, redact_url(url.reveal()))
    return WebhookSink(name, config, transport, keys, clock=clock, wall=wall)
