"""The connection context kept by the native library, for the Python parser's lines.

When the native path runs, one context must serve both parsers in line order: the library parses most
lines itself and the Python parser the rest, and a line on one side may name the client of a line on the
other. :class:`NativeContext` is a :class:`ConnectionContext` whose entries live in the library.
"""

from __future__ import annotations

import ctypes
import weakref

from bastion_guard.native.library import NativeLibrary
from bastion_guard.parsing.context import ConnectionContext

_DEFAULT_CAPACITY = 8192  # ConnectionContext's
_NO_PORT = -1
# A port that does not fit the library's int64 (a forged line can carry any number of digits): the library
# keeps this marker and the number itself stays here, in a map that holds no more than the live entries.
_BIG_PORT = -2
_INT64_MAX = (1 << 63) - 1


class NativeError(RuntimeError):
    """The library refused a call (bad arguments or an internal error): a bug, never input-dependent."""


def _host(host: str | None) -> tuple[bytes | None, int, int]:
    if host is None:
        return None, 0, 0
    data = host.encode("utf-8", "surrogatepass")
    return data, len(data), 1


class NativeContext(ConnectionContext):
    """:class:`ConnectionContext` with its entries in the native library (same contract, same bound)."""

    __slots__ = ("__weakref__", "_big_ports", "_dll", "_handle", "_ip", "_port")

    def __init__(self, library: NativeLibrary, capacity: int = _DEFAULT_CAPACITY) -> None:
        super().__init__(capacity)
        self._dll = library.dll
        handle = self._dll.bgn_context_new(capacity)
        if not handle:
            raise NativeError("bgn_context_new failed")
        self._handle: int = handle
        self._ip = ctypes.create_string_buffer(256)
        self._port = ctypes.c_int64()
        self._big_ports: dict[tuple[str | None, int], int] = {}
        weakref.finalize(self, self._dll.bgn_context_free, handle)

    @property
    def handle(self) -> int:
        """The library's pointer, for :class:`~bastion_guard.native.chunks.ChunkParser`."""
        return self._handle

    def remember(self, host: str | None, pid: int | None, ip: str, port: int | None, epoch: float) -> None:
        """See :meth:`ConnectionContext.remember`."""
        if pid is None:
            return
        data, length, has_host = _host(host)
        address = ip.encode("utf-8")
        big_port = port if port is not None and port > _INT64_MAX else None
        port_value = _NO_PORT if port is None else _BIG_PORT if big_port is not None else port
        if self._dll.bgn_context_remember(
            self._handle, data, length, has_host, pid, address, len(address), port_value, epoch
        ) != 0:
            raise NativeError("bgn_context_remember failed")
        if big_port is not None:
            self._big_ports[(host, pid)] = big_port
            if len(self._big_ports) > self._capacity:
                self._forget_dead_big_ports()

    def _forget_dead_big_ports(self) -> None:
        """Keep the big ports the library still refers to (at most ``capacity``: its live entries)."""
        for host, pid in list(self._big_ports):
            data, length, has_host = _host(host)
            found = self._dll.bgn_context_lookup(
                self._handle, data, length, has_host, pid, -1e300, self._ip, len(self._ip),
                ctypes.byref(self._port),
            )  # an epoch before everything: any live entry answers, whatever its age
            if found < 0 or self._port.value != _BIG_PORT:
                del self._big_ports[(host, pid)]

    def lookup(self, host: str | None, pid: int | None, epoch: float) -> tuple[str, int | None] | None:
        """See :meth:`ConnectionContext.lookup`."""
        if pid is None:
            return None
        data, length, has_host = _host(host)
        found = self._dll.bgn_context_lookup(
            self._handle, data, length, has_host, pid, epoch, self._ip, len(self._ip), ctypes.byref(self._port)
        )
        if found == -2:
            return None
        if found < 0:
            raise NativeError("bgn_context_lookup failed")
        port: int | None = self._port.value
        if port == _BIG_PORT:
            port = self._big_ports.get((host, pid))
        elif port == _NO_PORT:
            port = None
        return self._ip.raw[:found].decode("utf-8"), port

    def forget(self, host: str | None, pid: int | None) -> None:
        """See :meth:`ConnectionContext.forget`."""
        if pid is None:
            return
        data, length, has_host = _host(host)
        if self._dll.bgn_context_forget(self._handle, data, length, has_host, pid) != 0:
            raise NativeError("bgn_context_forget failed")

    def __len__(self) -> int:
        return int(self._dll.bgn_context_len(self._handle))
