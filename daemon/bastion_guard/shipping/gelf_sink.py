"""The Graylog sink: records -> GELF 1.1 payloads -> UDP, TCP or HTTP.

Registered in the sink table as ``"gelf": (parse_config, build)``. The sink maps and hands over; what
"delivered" means depends on the transport and is spelled out in ``gelf_transport`` (UDP: the datagrams
left; TCP: the receiving host acknowledged the bytes; HTTP: Graylog answered 202). Retries, back-off and
dead letters belong to the spool worker.
"""

from __future__ import annotations

from collections.abc import Sequence

from bastion_guard.shipping.base import Delivery, Health, Result
from bastion_guard.shipping.gelf import to_gelf
from bastion_guard.shipping.gelf_config import GelfConfig, Transport, parse_config
from bastion_guard.shipping.gelf_http import HttpTransport
from bastion_guard.shipping.gelf_transport import GelfTransport, TcpTransport, UdpTransport
from bastion_guard.shipping.records import Record, RecordKind


class GelfSink:
    """Ships every record of the configured kinds as one GELF message; other kinds are ``SKIPPED``."""

    def __init__(
        self, name: str, transport: GelfTransport, kinds: frozenset[RecordKind] = frozenset(RecordKind)
    ) -> None:
        self.name = name
        self._transport = transport
        self._kinds = kinds

    def deliver(self, records: Sequence[Record]) -> Sequence[Delivery]:
        """One :class:`Delivery` per record, in order; network errors come back as ``RETRY``."""
        results: list[Delivery | None] = [None] * len(records)
        payloads = []
        indexes = []
        for index, record in enumerate(records):
            if record.kind not in self._kinds:
                results[index] = Delivery(Result.SKIPPED)
                continue
            try:
                payloads.append(to_gelf(record))
            except (TypeError, ValueError, AttributeError) as error:  # a body that is not what its kind says
                results[index] = Delivery(Result.REJECTED, f"cannot map record to GELF: {type(error).__name__}")
                continue
            indexes.append(index)
        if payloads:
            for index, delivery in zip(indexes, self._transport.send(payloads), strict=True):
                results[index] = delivery
        return [result or Delivery(Result.RETRY, "no result from the transport") for result in results]

    def health(self) -> Health:
        """The transport's check (connect for TCP/HTTP; resolve and open a socket for UDP)."""
        try:
            return self._transport.check()
        except Exception as error:  # health() must never raise: the worker and status call it unguarded
            return Health(False, f"health check failed: {type(error).__name__}")

    def close(self) -> None:
        """Close the transport's connection."""
        self._transport.close()


def build(config: GelfConfig, name: str) -> GelfSink:
    """The sink for a validated entry; reads the password and TLS files now (raises ``GelfError`` or
    :class:`~bastion_guard.shipping.secrets.SecretError`)."""
    transport: GelfTransport
    if config.transport is Transport.UDP:
        transport = UdpTransport(config.host, config.port, config.chunk_bytes, config.compression,
                                 config.timeout_secs)
    elif config.transport is Transport.TCP:
        transport = TcpTransport(config.host, config.port, config.timeout_secs, config.tls)
    else:
        credentials = None
        if config.username is not None and config.password is not None:
            credentials = (config.username, config.password.load().reveal())
        transport = HttpTransport(config.host, config.port, config.path, timeout_secs=config.timeout_secs,
                                  tls=config.tls, compression=config.compression, credentials=credentials,
                                  bulk=config.bulk, max_body_bytes=config.max_body_bytes)
    return GelfSink(name, transport, config.kinds)


__all__ = ["GelfSink", "build", "parse_config"]
