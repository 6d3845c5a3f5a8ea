"""Asking other servers for space hierarchies: via servers in order until one answers, our own
name skipped, answers kept for CACHE_TTL_S, failures not kept."""

from __future__ import annotations

from typing import Any

from dendrite_lite.federation.client import UnreachableError
from dendrite_lite.federation.hierarchy import CACHE_TTL_S, RemoteHierarchy

ANSWER = {"room": {"room_id": "!s:b"}, "children": [], "inaccessible_children": []}


class _Client:
    def __init__(self, up: set[str]) -> None:
        self.up = up
        self.asked: list[tuple[str, str, Any]] = []

    async def get_json(self, destination: str, path: str, **kw: Any) -> Any:
        self.asked.append((destination, path, kw.get("query")))
        if destination not in self.up:
            raise UnreachableError(destination, "down")
        return ANSWER


async def test_via_order_cache_and_expiry() -> None:
    now = [0.0]
    client = _Client(up={"b"})
    remote = RemoteHierarchy(client, "me", clock=lambda: now[0])  # type: ignore[arg-type]
    assert await remote.fetch("!s:b", ["me", "a", "b", "c"], False) == ANSWER
    assert [d for d, _, _ in client.asked] == ["a", "b"]
    assert client.asked[1][1:] == ("/_matrix/federation/v1/hierarchy/%21s%3Ab", {"suggested_only": "false"})
    assert await remote.fetch("!s:b", ["a", "b"], False) == ANSWER
    assert len(client.asked) == 2  # from the cache
    assert await remote.fetch("!s:b", ["b"], True) == ANSWER  # another question
    assert len(client.asked) == 3
    now[0] += CACHE_TTL_S
    await remote.fetch("!s:b", ["b"], False)
    assert len(client.asked) == 4


async def test_failures_not_kept() -> None:
    client = _Client(up=set())
    remote = RemoteHierarchy(client, "me")  # type: ignore[arg-type]
    assert await remote.fetch("!s:b", ["a"], False) is None
    client.up.add("a")
    assert await remote.fetch("!s:b", ["a"], False) == ANSWER
