"""Alerting webhooks: a sink that turns decisions and key-lifecycle summaries into messages for people.

Unlike Elasticsearch or Graylog, a webhook's reader is a person (Slack), a router of pages (Alertmanager)
or another program (generic, signed). So this sink chooses what to send (:mod:`.routing`), never sends the
same alert twice in a short while, and never floods a channel: what is over the rate limit is coalesced
into digest messages (:mod:`.sink`). It reads the same durable spool as every sink, so alerts survive
restarts and outages; a record is reported delivered only once a message that covers it was accepted.

Modules: :mod:`.config` (YAML entry), :mod:`.secrets` (files or environment, never shown), :mod:`.routing`
(selection, dedup and digest keys), :mod:`.ratelimit` (token bucket), :mod:`.digest` (coalesced counts),
:mod:`.formats` (Slack, Alertmanager, generic payloads), :mod:`.signing` (Standard Webhooks HMAC),
:mod:`.transport` (HTTPS POST and what a status means), :mod:`.sink` (the planner that ties them together).
"""

from bastion_guard.shipping.webhook.config import WebhookConfig, parse_config
from bastion_guard.shipping.webhook.sink import WebhookSink, build

__all__ = ["WebhookConfig", "WebhookSink", "build", "parse_config"]
