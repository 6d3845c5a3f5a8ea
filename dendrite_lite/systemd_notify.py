"""Telling systemd how the server is doing (`Type=notify` units): READY=1 once the listeners
accept and storage is open, STATUS= lines a person sees in `systemctl status`, STOPPING=1, and
WATCHDOG=1 keep-alives sent from the event loop, so a loop that hangs (not only a process that
dies) gets the service restarted.

The protocol is one datagram per message to the unix socket named by $NOTIFY_SOCKET (sd_notify(3));
a name starting with "@" is in the abstract namespace. Without $NOTIFY_SOCKET (not under systemd)
every call does nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket

__all__ = ["SystemdNotifier"]

log = logging.getLogger(__name__)


class SystemdNotifier:
    def __init__(self, address: str | None, watchdog_usec: int | None) -> None:
        self._address = address
        self._sock: socket.socket | None = None
        # systemd expects a keep-alive within WatchdogSec; sending at half of it leaves margin.
        self.watchdog_interval_s = watchdog_usec / 2_000_000 if watchdog_usec else None

    @classmethod
    def from_environment(cls) -> SystemdNotifier:
        address = os.environ.get("NOTIFY_SOCKET") or None
        watchdog_usec = _watchdog_usec()
        return cls(address, watchdog_usec)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, *lines: str) -> None:
        """Send `KEY=value` lines as one message (a failure is logged, never raised: systemd
        going away must not stop the server)."""
        if self._address is None:
            return
        address = self._address
        if address.startswith("@"):
            address = "\0" + address[1:]
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto("\n".join(lines).encode(), address)
        except OSError as e:
            log.warning("cannot notify systemd at %s: %s", self._address, e)

    def ready(self, status: str) -> None:
        self.notify("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        self.notify(f"STATUS={status}")

    def stopping(self) -> None:
        self.notify("STOPPING=1", "STATUS=stopping")

    def start_watchdog(self) -> asyncio.Task[None] | None:
        """Keep-alives from the running event loop, while it runs (None: no watchdog asked)."""
        if self._address is None or self.watchdog_interval_s is None:
            return None
        return asyncio.get_running_loop().create_task(self._keep_alive(self.watchdog_interval_s))

    async def _keep_alive(self, interval_s: float) -> None:
        while True:
            self.notify("WATCHDOG=1")
            await asyncio.sleep(interval_s)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _watchdog_usec() -> int | None:
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    # WATCHDOG_PID names the process the watchdog is for. We answer for ourselves, or for our
    # parent when that is a PyInstaller one-file bootloader (the unit's main PID, which only
    # unpacks and waits for us); another child that inherited the variable stays quiet.
    if not usec.isdigit() or (pid.isdigit() and int(pid) not in (os.getpid(), os.getppid())):
        return None
    return int(usec)
