"""Notifier: wakes exactly the users a write concerns; at shutdown, every long-poll at once."""

from __future__ import annotations

import asyncio

from dendrite_lite.sync.notifier import Notifier


async def test_notify_wakes_only_the_named_users() -> None:
    n = Notifier()
    with n.listen("@a:x") as a, n.listen("@b:x") as b:
        n.notify(["@a:x"])
        assert await a.wait(0.01)
        assert not await b.wait(0.01)
    assert n.listening_users() == 0


async def test_close_wakes_waiting_and_later_listeners() -> None:
    n = Notifier()
    with n.listen("@a:x") as a:
        waiting = asyncio.create_task(a.wait(30))
        await asyncio.sleep(0)
        assert not n.closed
        n.close()
        assert n.closed
        assert await asyncio.wait_for(waiting, 1) is True
    with n.listen("@b:x") as b:  # a /sync arriving during shutdown does not park
        assert await asyncio.wait_for(b.wait(30), 1) is True
