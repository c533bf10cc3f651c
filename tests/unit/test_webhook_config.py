"""The webhook entry's validation: located problems, defaults per format, and secrets only by reference."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion_guard.config.yamlsrc import load_documents
from bastion_guard.decisions import Verdict
from bastion_guard.errors import ConfigProblem, Location
from bastion_guard.rules.fields import Fields
from bastion_guard.shipping.records import RecordKind
from bastion_guard.shipping.webhook.config import Format, RateLimit, WebhookConfig, parse_config


def parse(tmp_path: Path, text: str) -> tuple[WebhookConfig, list[str]]:
    """Parse ``text`` as one sinks entry (type and name read first, as the caller does); problems as text."""
    path = tmp_path / "bastiond.yaml"
    path.write_text(text)
    problems: list[ConfigProblem] = []
    entry = Fields(load_documents(path)[0], "sinks[0]", problems, Location(str(path)))
    entry.get("type", str, "")
    entry.get("name", str, "")
    config = parse_config(entry)
    return config, [str(problem).removeprefix(f"{path}:") for problem in problems]


def test_slack_defaults(tmp_path: Path) -> None:
    """Slack: 1 message/s with a burst of 5, decisions and key summaries, 5 minute dedup."""
    config, problems = parse(tmp_path, "type: webhook\nname: s\nformat: slack\nurl_env: SLACK_URL\n")
    assert problems == []
    assert config.format is Format.SLACK
    assert config.rate_limit == RateLimit(1.0, 5)
    assert config.kinds == (RecordKind.DECISION, RecordKind.KEY)
    assert config.verdicts == (Verdict.BAN, Verdict.ALERT)
    assert config.dedup_secs == 300.0
    assert config.url is None
    assert config.url_secret is not None
    assert config.url_secret.env == "SLACK_URL"


def test_everything_written(tmp_path: Path) -> None:
    """Every option read into its typed field."""
    config, problems = parse(tmp_path, """\
type: webhook
name: g
format: generic
url: https://hooks.example.com/bastion
secret_file: /etc/bastion-guard/hook.key
timeout_secs: 5
kinds: [decision, unban]
verdicts: [alert]
rules: [root-*, revoked-key-tried]
dedup_secs: 10m
rate_limit: {per_sec: 0.5, burst: 2}
digest_secs: 1m
alert_ttl_secs: 2h
github_signature: true
key_steps: true
""")
    assert problems == []
    assert config.kinds == (RecordKind.DECISION, RecordKind.UNBAN)
    assert config.verdicts == (Verdict.ALERT,)
    assert config.selects_rule("root-login")
    assert not config.selects_rule("sshd-bruteforce")
    assert (config.dedup_secs, config.digest_secs, config.alert_ttl_secs) == (600.0, 60.0, 7200.0)
    assert config.rate_limit == RateLimit(0.5, 2)
    assert config.signing_secret is not None
    assert config.signing_secret.file == Path("/etc/bastion-guard/hook.key")


@pytest.mark.parametrize(("text", "expected"), [
    ("format: generic\nurl: https://h.example/x\n", "1:1: sinks[0].secret_file: is required (or secret_env)"),
    ("format: slack\nurl: https://hooks.slack.com/services/T/B/xoxsekrit\n",
     "4:1: sinks[0].url: a Slack webhook URL is a credential: put it in url_file or url_env"),
    ("format: slack\nurl_env: U\nsecret: whsec_abc\n",
     "5:1: sinks[0].secret: secrets are not written inline: use secret_file or secret_env"),
    ("format: slack\nurl_env: U\nsecret_env: S\n", "5:1: sinks[0].secret_env: the slack format is not signed"),
    ("format: alertmanager\nurl: http://192.0.2.1:9093\n",
     "4:1: sinks[0].url: must be https:// (plain http only to this host"),
    ("format: alertmanager\nurl: https://bob:hunter2@am.example\n", "4:1: sinks[0].url: must not carry user:password"),
    ("format: alertmanager\nurl: https://am.example\nurl_env: X\n", "4:1: sinks[0].url: give url, url_file"),
    ("format: alertmanager\n", "1:1: sinks[0].url: is required"),
    ("format: teams\nurl: https://x.example\n", "3:1: sinks[0].format: must be one of generic, slack, alertmanager"),
    ("format: slack\nurl_env: U\nkinds: [event]\n", "5:1: sinks[0].kinds: raw events are never sent to webhooks"),
    ("format: slack\nurl_env: U\nverdicts: [kill]\n", "5:1: sinks[0].verdicts: 'kill' is not one of ban, alert"),
    ("format: slack\nurl_env: U\nrate_limit: {per_sec: 0, burst: 1}\n",
     "5:14: sinks[0].rate_limit.per_sec: must be at least 0.001"),
    ("format: slack\nurl_env: U\nrate_limit: {per_second: 1}\n", "5:14: sinks[0].rate_limit.per_second: unknown key"),
    ("format: slack\nurl_env: U\ndigest_secs: 0\n", "5:1: sinks[0].digest_secs: must be more than 0"),
    ("format: slack\nurl_env: U\ndedup: 5m\n", "5:1: sinks[0].dedup: unknown key"),
    ("format: slack\nurl_env: U\ngithub_signature: true\n",
     "5:1: sinks[0].github_signature: only the generic format is signed"),
    ("format: slack\nurl_env: U\nca_file: /nonexistent/ca.pem\n", "5:1: sinks[0].ca_file: /nonexistent/ca.pem"),
])
def test_problems_are_located(tmp_path: Path, text: str, expected: str) -> None:
    """Each mistake is reported with line:column and key path (a missing key at its mapping), and the URL
    itself is never echoed."""
    _config, problems = parse(tmp_path, "type: webhook\nname: w\n" + text)
    assert any(problem.startswith(expected) for problem in problems), problems
    assert not any("xoxsekrit" in problem or "hunter2" in problem for problem in problems)


def test_loopback_http_is_allowed(tmp_path: Path) -> None:
    """A local Alertmanager on plain http (127.0.0.1:9093) is fine: the traffic never leaves the host."""
    _config, problems = parse(tmp_path, "format: alertmanager\nurl: http://127.0.0.1:9093\n")
    assert problems == []
