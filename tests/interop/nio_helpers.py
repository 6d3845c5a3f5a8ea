"""Helpers for driving dendrite-lite with matrix-nio, a real Matrix client library.

nio validates every response (and every event inside /sync and /messages) against its own JSON
schemas. A response that fails becomes an ErrorResponse, an event that fails becomes a BadEvent or
is dropped, and either way nio only logs a warning. These helpers turn both into test failures:
`expect()` insists on the success class, and `NioValidationLog` collects nio's validation
warnings so a test can assert there were none.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from nio import (  # type: ignore[import-untyped]
    AsyncClient,
    AsyncClientConfig,
    BadEvent,
    ErrorResponse,
    LoginResponse,
    RegisterResponse,
    SyncResponse,
    UnknownBadEvent,
)

__all__ = [
    "PASSWORD",
    "NioValidationLog",
    "nio_validation",
    "NioUser",
    "expect",
    "new_nio_client",
    "register_nio_user",
    "login_nio_user",
    "bad_events",
    "joined_room_info",
    "sync_until",
]

PASSWORD = "nio interop password 123"

T = TypeVar("T")
R = TypeVar("R")


def expect(resp: object, cls: type[R]) -> R:
    """Assert that nio parsed `resp` into the success class `cls` (not an ErrorResponse)."""
    if not isinstance(resp, cls):
        detail = ""
        if isinstance(resp, ErrorResponse):
            detail = f" (status_code={resp.status_code!r}, message={resp.message!r})"
        raise AssertionError(f"expected {cls.__name__}, nio produced {resp!r}{detail}")
    return resp


def new_nio_client(url: str, user: str = "") -> AsyncClient:
    """An AsyncClient that fails fast: nio would otherwise retry transport errors and 429s
    forever, turning a server bug into a hanging test."""
    config = AsyncClientConfig(
        max_timeouts=0, max_limit_exceeded=0, store_sync_tokens=False, encryption_enabled=False
    )
    return AsyncClient(url, user, config=config)


@dataclass
class NioUser:
    client: AsyncClient
    user_id: str
    device_id: str


async def register_nio_user(url: str, localpart: str, password: str = PASSWORD) -> NioUser:
    """Register through nio's own register() (a single m.login.dummy request, no session: the
    spec lets a client complete the dummy stage on the first request)."""
    client = new_nio_client(url, localpart)
    # A named device, as clients name theirs: nio's devices() insists on display_name (null or a
    # string) where the spec says "absent if no name has been set".
    resp = expect(
        await client.register(localpart, password, device_name=f"nio {localpart}"),
        RegisterResponse,
    )
    # nio keeps the access token and user id from the register response: logged in.
    assert client.logged_in and client.user_id == resp.user_id
    return NioUser(client, resp.user_id, resp.device_id)


async def login_nio_user(url: str, user_id: str, password: str = PASSWORD) -> NioUser:
    """A second, independent device of an existing user, logged in with nio's login()."""
    client = new_nio_client(url, user_id)
    resp = expect(await client.login(password, device_name="nio second device"), LoginResponse)
    return NioUser(client, resp.user_id, resp.device_id)


def joined_room_info(resp: SyncResponse, room_id: str) -> Any:
    """The RoomInfo of `room_id` in the join section, or None."""
    return resp.rooms.join.get(room_id)


def bad_events(events: list[Any]) -> list[Any]:
    return [e for e in events if isinstance(e, (BadEvent, UnknownBadEvent))]


async def sync_until(
    client: AsyncClient,
    found: Callable[[SyncResponse], T | None],
    *,
    within_s: float = 5.0,
    poll_ms: int = 1000,
    sync_filter: dict[str, Any] | None = None,
) -> T:
    """Long-poll /sync (incrementally, from the client's own next_batch) until `found` returns
    something for a response; every response must parse as a SyncResponse whose timeline holds
    no event nio rejected."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        resp = expect(await client.sync(timeout=poll_ms, sync_filter=sync_filter), SyncResponse)
        for info in resp.rooms.join.values():
            assert not bad_events(info.timeline.events), info.timeline.events
            assert not bad_events(info.state), info.state
        hit = found(resp)
        if hit is not None:
            return hit
        if loop.time() > deadline:
            raise AssertionError(f"nothing found by sync within {within_s} s")


class NioValidationLog(logging.Handler):
    """Collects nio's "Error validating ..." log records (responses, events) while installed."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "Error validating" in message:
            self.messages.append(f"{record.name}: {message}")


@pytest.fixture(autouse=True)
def nio_validation() -> Iterator[NioValidationLog]:
    """Fails the test on any schema complaint nio logs (import it into a test module)."""
    handler = NioValidationLog()
    logger = logging.getLogger("nio")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
    assert handler.messages == [], handler.messages
