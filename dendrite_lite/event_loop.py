"""The event loop the server runs on: uvloop (`server.event_loop`, the default) or asyncio's,
with our TLS settings.

The trade, measured on this machine: uvloop runs the same code with less overhead per callback,
task and socket operation, and costs 1.8 MB more RSS. On Quart and Hypercorn, which start several
tasks per request, that overhead is a large share: server CPU per JSON request 0.60 -> 0.47 ms,
per message sent 2.99 -> 2.20 ms at 16 concurrent senders. So uvloop is the default; asyncio's
loop remains for platforms without it (and is what the test suite runs on).

Both loops wait 30 s by default for a peer's TLS close_notify when a connection closes, so a peer
holding an idle keep-alive connection (Synapse does) made every stop, and `systemctl stop`, take
30 s; measured: 30.01 s before, 2.0 s with TLS_CLOSE_WAIT_S. The HTTP server creates its listening
sockets through `loop.create_server`, so the loop supplies the shorter wait there.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["TLS_CLOSE_WAIT_S", "new_event_loop", "EventLoopPolicy"]

TLS_CLOSE_WAIT_S = 2.0


class _TlsCloseWait:
    async def create_server(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("ssl") is not None:
            kwargs.setdefault("ssl_shutdown_timeout", TLS_CLOSE_WAIT_S)
        return await super().create_server(*args, **kwargs)  # type: ignore[misc]


_LOOP_CLASSES: dict[str, type[asyncio.AbstractEventLoop]] = {}


def _loop_class(kind: str) -> type[asyncio.AbstractEventLoop]:
    if kind == "uvloop":
        try:
            import uvloop
        except ImportError:  # pragma: no cover - uvloop is a dependency; kept for odd platforms
            pass
        else:
            return type("Loop", (_TlsCloseWait, uvloop.Loop), {})
    return type("Loop", (_TlsCloseWait, asyncio.SelectorEventLoop), {})


def new_event_loop(kind: str = "asyncio") -> asyncio.AbstractEventLoop:
    """A new loop of `kind` (config `server.event_loop`): "asyncio" or "uvloop"."""
    cls = _LOOP_CLASSES.get(kind)
    if cls is None:
        cls = _LOOP_CLASSES[kind] = _loop_class(kind)
    return cls()


class EventLoopPolicy(asyncio.DefaultEventLoopPolicy):
    """For code that takes a policy (pytest-asyncio's `event_loop_policy` fixture)."""

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        return new_event_loop()
