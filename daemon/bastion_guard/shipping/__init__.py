"""Shipping: every event, decision and action leaves the bastion through a durable spool.

The processing loop turns what happened into :class:`~bastion_guard.shipping.records.Record` values (plain
data with a deterministic id) and appends them to the spool before the source position moves on. One worker
per configured sink reads the spool from its own cursor, hands batches to a :class:`~bastion_guard.shipping.base.Sink`
and removes nothing until the sink says each record was delivered (or rejected for good, into the dead-letter
store). Sinks only translate and transmit: Elasticsearch (ECS), Graylog (GELF) and webhooks are peers.
"""
