"""The ``type: webhook`` sink's YAML entry, validated with file:line:column and key::

    sinks:
      - type: webhook
        name: ops-slack                  # read by the caller: metrics label and spool cursor
        format: slack                    # generic (signed JSON) | slack | alertmanager
        url_file: /etc/bastion-guard/secrets/slack-url   # or url_env; or url: (no token in it)
        secret_file: /etc/bastion-guard/secrets/hook.key # generic only: whsec_... (or secret_env); two while rotating
        ca_file: /etc/bastion-guard/hook-ca.pem          # verify the receiver against this CA
        timeout_secs: 10
        kinds: [decision, key]           # default; also ban, unban, audit. Raw events never.
        verdicts: [ban, alert]           # decisions with these verdicts (default both)
        rules: [sshd-*, root-login]      # decisions of these rules (shell patterns; default all)
        dedup_secs: 5m                   # the same rule+target+verdict is sent once in this window; 0 = off
        rate_limit: {per_sec: 1, burst: 5}   # messages; what is over it goes into digests
        digest_secs: 10s                 # at most one digest message per this interval
        alert_ttl_secs: 1h               # alertmanager: endsAt of alerts that have no ban expiry
        github_signature: false          # generic: also send X-Hub-Signature-256

Nothing here connects anywhere or reads a secret (``bastiond --check-config`` runs it); :func:`build`
reads secrets when the daemon starts.
"""

from __future__ import annotations

import enum
import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from bastion_guard.config.fielddoc import KeyDoc, doc, docs, internal
from bastion_guard.decisions import Verdict
from bastion_guard.rules.fields import Fields
from bastion_guard.shipping.records import RecordKind
from bastion_guard.shipping.secrets import SecretRef, is_loopback_host, secret_ref


class Format(enum.StrEnum):
    """What the receiver speaks."""

    GENERIC = "generic"  # JSON {type, timestamp, data}, Standard Webhooks signature
    SLACK = "slack"  # incoming webhook: text + blocks
    ALERTMANAGER = "alertmanager"  # POST /api/v2/alerts


# Which record kinds a webhook may carry. Raw events are deliberately not among them: one per log line
# would page people for every failed password; they belong in Elasticsearch or Graylog.
SENDABLE_KINDS = (RecordKind.DECISION, RecordKind.BAN, RecordKind.UNBAN, RecordKind.KEY, RecordKind.AUDIT)
DEFAULT_KINDS = (RecordKind.DECISION, RecordKind.KEY)

# Slack allows about one message per second per channel with short bursts; generic receivers and
# Alertmanager (which takes many alerts per request) get more room.
_DEFAULT_RATES = {Format.SLACK: (1.0, 5), Format.GENERIC: (5.0, 20), Format.ALERTMANAGER: (2.0, 10)}


# The start of every example: a minimal valid entry the documented key is added to.
_HOOK = "sinks: [{type: webhook,"
_GENERIC = f"{_HOOK} url: https://hooks.example.com/bastion, secret_env: HOOK_SECRET"
_ALERTMANAGER = f"{_HOOK} format: alertmanager, url: https://alertmanager.example.com:9093"


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A token bucket over messages: ``per_sec`` refill, ``burst`` capacity."""

    per_sec: float = field(metadata=doc(
        "sinks[].rate_limit.per_sec", "Messages per second on average; what is over the limit is summed up in "
        "digests, never dropped silently.", f"{_GENERIC}, rate_limit: {{per_sec: 0.5}}}}]",
        default="1 (slack), 5 (generic), 2 (alertmanager)"))
    burst: int = field(metadata=doc(
        "sinks[].rate_limit.burst", "Messages that may go at once before `per_sec` paces them.",
        f"{_GENERIC}, rate_limit: {{burst: 50}}}}]", default="5 (slack), 20 (generic), 10 (alertmanager)"))


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    """A validated ``type: webhook`` entry; the URL and signing key are references, read at build time."""

    format: Format = field(metadata=doc(
        "sinks[].format", "What the receiver speaks: `generic` (JSON signed as Standard Webhooks), `slack` (an "
        "incoming webhook) or `alertmanager` (`POST /api/v2/alerts`).", f"{_ALERTMANAGER}}}]",
        default="generic"))
    url: str | None = field(default=None, metadata=doc(
        "sinks[].url", "The receiver's URL, written inline when it holds no token: `https://` (plain `http://` "
        "only to this host). One of `url`, `url_file`, `url_env` is required.", f"{_GENERIC}}}]"))
    url_secret: SecretRef | None = field(default=None, metadata=docs(
        KeyDoc("sinks[].url_file", "A file holding the URL, for URLs that are credentials (a Slack webhook URL "
               "must be given this way or by `url_env`).",
               f"{_HOOK} format: slack, url_file: /etc/bastion-guard/slack-url}}]"),
        KeyDoc("sinks[].url_env", "The environment variable holding the URL.",
               f"{_HOOK} format: slack, url_env: SLACK_WEBHOOK_URL}}]"),
    ))
    signing_secret: SecretRef | None = field(default=None, metadata=docs(
        KeyDoc("sinks[].secret_file", "`generic` (required, or `secret_env`): the signing key (`whsec_...`); "
               "several, separated by white space, while rotating.",
               f"{_HOOK} url: https://hooks.example.com/bastion, secret_file: /etc/bastion-guard/hook.key}}]"),
        KeyDoc("sinks[].secret_env", "The environment variable holding the signing key.", f"{_GENERIC}}}]"),
    ))
    ca_file: Path | None = field(default=None, metadata=doc(
        "sinks[].ca_file", "Verify the receiver's certificate against this CA file (PEM) instead of the system's "
        "CAs; it must exist when the configuration is checked.",
        f"{_GENERIC}, ca_file: /etc/bastion-guard/hook-ca.pem}}]"))
    timeout_secs: float = field(default=10.0, metadata=doc(
        "sinks[].timeout_secs", "Seconds one request may take before it counts as failed (and is retried).",
        f"{_GENERIC}, timeout_secs: 30}}]"))
    kinds: tuple[RecordKind, ...] = field(default=DEFAULT_KINDS, metadata=doc(
        "sinks[].kinds", f"Which records are sent: any of {', '.join(SENDABLE_KINDS)} (raw events never: one "
        "message per log line would page people for every failed password).",
        f"{_GENERIC}, kinds: [decision, ban, unban]}}]", default=", ".join(DEFAULT_KINDS)))
    verdicts: tuple[Verdict, ...] = field(default=(Verdict.BAN, Verdict.ALERT), metadata=doc(
        "sinks[].verdicts", "Decisions with these verdicts are sent.", f"{_GENERIC}, verdicts: [ban]}}]",
        default="ban, alert"))
    rules: tuple[str, ...] = field(default=(), metadata=doc(
        "sinks[].rules", "Decisions of these rules are sent (shell patterns).",
        f"{_GENERIC}, rules: [sshd-*, root-login]}}]", default="every rule"))
    key_steps: bool = field(default=False, metadata=doc(
        "sinks[].key_steps", "Key lifecycle records: every step, not only the summaries.",
        f"{_GENERIC}, key_steps: true}}]"))
    dedup_secs: float = field(default=300.0, metadata=doc(
        "sinks[].dedup_secs", "The same rule, target and verdict is sent once in this window (`0` = off).",
        f"{_GENERIC}, dedup_secs: 15m}}]", default="5m"))
    rate_limit: RateLimit = field(default=RateLimit(1.0, 5), metadata=internal(
        "a section: sinks[].rate_limit.per_sec and .burst, with per-format defaults"))
    digest_secs: float = field(default=10.0, metadata=doc(
        "sinks[].digest_secs", "At most one digest message (what the rate limit held back) per this interval.",
        f"{_GENERIC}, digest_secs: 1m}}]", default="10s"))
    alert_ttl_secs: float = field(default=3600.0, metadata=doc(
        "sinks[].alert_ttl_secs", "`alertmanager`: `endsAt` of alerts that have no ban expiry.",
        f"{_ALERTMANAGER}, alert_ttl_secs: 4h}}]", default="1h"))
    github_signature: bool = field(default=False, metadata=doc(
        "sinks[].github_signature", "`generic`: also send GitHub's `X-Hub-Signature-256`.",
        f"{_GENERIC}, github_signature: true}}]"))

    def selects_rule(self, rule: str) -> bool:
        """Whether decisions of ``rule`` go to this destination."""
        return not self.rules or any(fnmatch.fnmatchcase(rule, pattern) for pattern in self.rules)


def parse_config(section: Fields) -> WebhookConfig:
    """Validate one webhook entry (``type`` and ``name`` were read by the caller); ends with reject_unknown."""
    form = Format(section.choice("format", tuple(Format), Format.GENERIC.value))
    url, url_secret = _url(section, form)
    signing = _signing(section, form)
    ca_file = section.get("ca_file", str, "")
    if ca_file and not Path(ca_file).is_file():
        section.problem("ca_file", f"{ca_file} is not a readable file")
    per_sec, burst = _DEFAULT_RATES[form]
    config = WebhookConfig(
        format=form, url=url, url_secret=url_secret, signing_secret=signing,
        ca_file=Path(ca_file) if ca_file else None,
        timeout_secs=section.number("timeout_secs", 10.0, minimum=0.1),
        kinds=_kinds(section), verdicts=_verdicts(section), rules=section.strings("rules"),
        key_steps=section.get("key_steps", bool, False),
        dedup_secs=section.duration("dedup_secs", 300.0),
        rate_limit=_rate_limit(section, RateLimit(per_sec, burst)),
        digest_secs=_positive_duration(section, "digest_secs", 10.0),
        alert_ttl_secs=_positive_duration(section, "alert_ttl_secs", 3600.0),
        github_signature=section.get("github_signature", bool, False),
    )
    if config.github_signature and form is not Format.GENERIC:
        section.problem("github_signature", "only the generic format is signed")
    section.reject_unknown()
    return config


def check_url(url: str) -> str | None:
    """Why ``url`` is not acceptable, or None. Plain http is only for this host: alerts carry addresses
    and user names, and TLS verification is what stops them going to whoever answers on the path."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("https", "http") or not host:
        return "must be an https:// URL"
    if parts.username or parts.password:
        return "must not carry user:password (use a signing secret or a token URL from url_file)"
    if parts.scheme == "http" and not is_loopback_host(host):
        return "must be https:// (plain http only to this host: 127.0.0.1, ::1, localhost)"
    return None


def _url(section: Fields, form: Format) -> tuple[str | None, SecretRef | None]:
    url = section.get("url", str, "") or None
    ref = secret_ref(section, "url", inline=True)
    if url and ref:
        section.problem("url", "give url, url_file or url_env, only one")
        return None, None
    if not url and not ref:
        section.problem("url", "is required (or url_file / url_env when the URL holds a token)")
        return None, None
    if url:
        problem = check_url(url)
        if problem:  # never echo the URL: it may hold a token after all
            section.problem("url", problem)
        elif form is Format.SLACK:
            section.problem("url", "a Slack webhook URL is a credential: put it in url_file or url_env")
    return url, ref


def _signing(section: Fields, form: Format) -> SecretRef | None:
    ref = secret_ref(section, "secret", required=form is Format.GENERIC)
    if ref is not None and form is not Format.GENERIC:
        section.problem("secret_file" if ref.file else "secret_env",
                        f"the {form} format is not signed (only generic is)")
    return ref


def _kinds(section: Fields) -> tuple[RecordKind, ...]:
    if not section.has("kinds"):
        return DEFAULT_KINDS
    kinds: list[RecordKind] = []
    for name in section.strings("kinds"):
        if name == RecordKind.EVENT:
            section.problem("kinds", "raw events are never sent to webhooks (ship them to Elasticsearch/Graylog)")
        elif name not in {kind.value for kind in SENDABLE_KINDS}:
            section.problem("kinds", f"{name!r} is not one of {', '.join(SENDABLE_KINDS)}")
        else:
            kinds.append(RecordKind(name))
    if section.has("kinds") and not kinds:
        section.problem("kinds", "selects nothing")
    return tuple(kinds)


def _verdicts(section: Fields) -> tuple[Verdict, ...]:
    if not section.has("verdicts"):
        return (Verdict.BAN, Verdict.ALERT)
    verdicts: list[Verdict] = []
    for name in section.strings("verdicts"):
        if name in tuple(Verdict):
            verdicts.append(Verdict(name))
        else:
            section.problem("verdicts", f"{name!r} is not one of {', '.join(Verdict)}")
    return tuple(verdicts)


def _rate_limit(section: Fields, default: RateLimit) -> RateLimit:
    nested = section.nested("rate_limit")
    if nested is None or not nested.ok:
        return default
    per_sec = nested.number("per_sec", default.per_sec, minimum=0.001)
    burst = nested.count("burst", default.burst, minimum=1)
    nested.reject_unknown()
    return RateLimit(per_sec, burst)


def _positive_duration(section: Fields, key: str, default: float) -> float:
    value = section.duration(key, default)
    if value <= 0:
        section.problem(key, "must be more than 0")
        return default
    return value
