"""Push gateway delivery (users.push_gateway): a gateway that keeps failing is retried, then
left alone for a doubling while; one that answers again is used at once."""

from __future__ import annotations

import httpx

from dendrite_lite.storage import Storage
from dendrite_lite.storage.pushers import Pusher
from dendrite_lite.users import push_gateway
from dendrite_lite.users.push_gateway import PushGateway

URL = "https://push.example.org/_matrix/push/v1/notify"
PUSHER = Pusher("@a:x", "app", "key", "http", "App", "Phone", None, "en", {"url": URL}, 0)


async def test_failing_gateway_backs_off(storage: Storage) -> None:
    status = [503]
    calls: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        return httpx.Response(status[0], json={"rejected": ["key"]} if status[0] == 200 else {})

    gateway = PushGateway(
        storage, client=httpx.AsyncClient(transport=httpx.MockTransport(answer)), retry_delay_s=0
    )
    try:
        assert await gateway._send(PUSHER, {}) == []
        assert len(calls) == push_gateway.ATTEMPTS
        status[0] = 200
        assert await gateway._send(PUSHER, {}) == []  # down: not even asked
        assert len(calls) == push_gateway.ATTEMPTS
        until, backoff = gateway._down[URL]
        assert backoff == push_gateway.DOWN_FIRST_S
        gateway._down[URL] = (0.0, backoff)  # the while is over
        assert await gateway._send(PUSHER, {}) == ["key"]
        assert len(calls) == push_gateway.ATTEMPTS + 1 and URL not in gateway._down
    finally:
        await gateway.stop()


async def test_backoff_doubles_to_a_cap(storage: Storage) -> None:
    gateway = PushGateway(
        storage, client=httpx.AsyncClient(transport=httpx.MockTransport(
            lambda r: httpx.Response(500))), retry_delay_s=0,
    )
    try:
        seen = []
        for _ in range(7):
            await gateway._send(PUSHER, {})
            seen.append(gateway._down[URL][1])
            gateway._down[URL] = (0.0, seen[-1])
        assert seen == [30, 60, 120, 240, 480, 600, 600]
    finally:
        await gateway.stop()
