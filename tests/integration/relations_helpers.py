"""Helpers for the relations, threads and search tests: sending related events and reading the
places where events are served, over HTTP."""

from __future__ import annotations

import itertools
from typing import Any

from tests.integration.room_helpers import User

__all__ = ["V1", "send_content", "edit", "thread_reply", "reference", "relations_of", "served"]

V1 = "/_matrix/client/v1"
_txn = itertools.count(1)


async def send_content(
    user: User, room_id: str, content: dict[str, Any], event_type: str = "m.room.message"
) -> str:
    resp = await user.call("PUT", f"/rooms/{room_id}/send/{event_type}/rel{next(_txn)}", content)
    return str(resp.json()["event_id"])


async def edit(user: User, room_id: str, target: str, body: str, **extra: Any) -> str:
    content = {
        "msgtype": "m.text",
        "body": f"* {body}",
        "m.new_content": {"msgtype": "m.text", "body": body},
        "m.relates_to": {"rel_type": "m.replace", "event_id": target},
        **extra,
    }
    return await send_content(user, room_id, content)


async def thread_reply(user: User, room_id: str, root: str, body: str) -> str:
    content = {"msgtype": "m.text", "body": body,
               "m.relates_to": {"rel_type": "m.thread", "event_id": root}}
    return await send_content(user, room_id, content)


async def reference(user: User, room_id: str, target: str) -> str:
    content = {"msgtype": "m.text", "body": "ref",
               "m.relates_to": {"rel_type": "m.reference", "event_id": target}}
    return await send_content(user, room_id, content)


async def relations_of(
    user: User, room_id: str, event_id: str, *tail: str, expect: int = 200, **params: Any
) -> dict[str, Any]:
    path = "/".join([f"{V1}/rooms/{room_id}/relations/{event_id}", *tail])
    resp = await user.call("GET", path, params=params, expect=expect)
    return dict(resp.json())


async def served(user: User, room_id: str, event_id: str) -> dict[str, dict[str, Any]]:
    """The event as /event, /messages, /context and an initial /sync serve it to `user`."""
    out: dict[str, dict[str, Any]] = {}
    out["event"] = (await user.call("GET", f"/rooms/{room_id}/event/{event_id}")).json()
    page = (await user.call("GET", f"/rooms/{room_id}/messages", params={"dir": "b", "limit": 50})).json()
    out["messages"] = next(e for e in page["chunk"] if e["event_id"] == event_id)
    ctx = (await user.call("GET", f"/rooms/{room_id}/context/{event_id}", params={"limit": 0})).json()
    out["context"] = ctx["event"]
    sync = (await user.call("GET", "/sync", params={"filter": '{"room":{"timeline":{"limit":50}}}'})).json()
    timeline = sync["rooms"]["join"][room_id]["timeline"]["events"]
    out["sync"] = next(e for e in timeline if e["event_id"] == event_id)
    return out
