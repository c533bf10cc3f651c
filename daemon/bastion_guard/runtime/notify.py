"""systemd notification (``sd_notify``) without a library: one datagram to ``$NOTIFY_SOCKET``.

``READY=1`` once the daemon protects the host, ``WATCHDOG=1`` from the processing loop (so a hung loop,
not just a live process, is what systemd watches), ``STOPPING=1`` and ``STATUS=...`` for humans.
"""

from __future__ import annotations

import os
import socket


class Notifier:
    """Talks to systemd when run under it; does nothing otherwise."""

    def __init__(self) -> None:
        address = os.environ.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):
            address = "\0" + address[1:]  # abstract namespace socket
        self._address = address or None
        usec = os.environ.get("WATCHDOG_USEC", "")
        # Ping at half the interval systemd allows, as sd_watchdog_enabled(3) recommends.
        self.watchdog_interval = int(usec) / 2_000_000 if usec.isdigit() and int(usec) > 0 else None

    def notify(self, *assignments: str) -> None:
        """Send ``KEY=VALUE`` assignments; errors are ignored (notification is advisory)."""
        if self._address is None:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(self._address)
                sock.sendall("\n".join(assignments).encode())
        except OSError:
            pass

    def ready(self, status: str) -> None:
        """Tell systemd we are up."""
        self.notify("READY=1", f"STATUS={status}")

    def ping(self) -> None:
        """Watchdog keep-alive."""
        if self.watchdog_interval is not None:
            self.notify("WATCHDOG=1")

    def stopping(self) -> None:
        """Tell systemd we are shutting down."""
        self.notify("STOPPING=1")
