"""Per-connection memory: which client a given sshd process is talking to.

Some sshd lines carry no address (``kex_exchange_identification: ...``, ``Disconnecting: Too many
authentication failures``, ``Authentication key ... revoked by file``), and a line whose attacker-chosen
user name pushed the real address past sshd's length limit must not be attributed from its text. In both
cases the same sshd process (host and pid) named the client earlier, in a line whose address no attacker
controls: ``Connection from ADDR port N on ...`` (LogLevel VERBOSE) or an end-anchored line with a short
user field. This map remembers that, bounded so a flood of connections cannot grow it without limit.
"""

from __future__ import annotations

_DEFAULT_CAPACITY = 8192
# Pre-authentication lines come within LoginGraceTime (120 s by default) of the connection; an entry much
# older than that belongs to a process whose pid may since have been reused by another client.
_MAX_AGE_SECS = 600.0


class ConnectionContext:
    """A bounded map ``(host, pid) -> (ip, port)``; the oldest entries are forgotten first."""

    __slots__ = ("_by_process", "_capacity")

    def __init__(self, capacity: int = _DEFAULT_CAPACITY) -> None:
        self._capacity = capacity
        self._by_process: dict[tuple[str | None, int], tuple[str, int | None, float]] = {}

    def remember(self, host: str | None, pid: int | None, ip: str, port: int | None, epoch: float) -> None:
        """Record that process ``pid`` on ``host`` serves client ``ip`` as of event time ``epoch``."""
        if pid is None:
            return
        entries = self._by_process
        key = (host, pid)
        previous = entries.get(key)
        if previous is not None:
            if port is None and previous[0] == ip:
                port = previous[1]  # pam_unix's rhost= has no port: keep the one sshd logged before
            del entries[key]  # re-insert at the young end
        elif len(entries) >= self._capacity:
            del entries[next(iter(entries))]
        entries[key] = (ip, port, epoch)

    def lookup(self, host: str | None, pid: int | None, epoch: float) -> tuple[str, int | None] | None:
        """The client that process ``pid`` on ``host`` named recently before ``epoch``, if any."""
        if pid is None:
            return None
        entry = self._by_process.get((host, pid))
        if entry is None or epoch - entry[2] > _MAX_AGE_SECS:
            return None
        return entry[0], entry[1]

    def forget(self, host: str | None, pid: int | None) -> None:
        """Drop the entry of a process whose connection has ended."""
        if pid is not None:
            self._by_process.pop((host, pid), None)

    def __len__(self) -> int:
        return len(self._by_process)
