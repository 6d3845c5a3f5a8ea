"""Helpers for the sliding sync (MSC4186) tests: requests shaped as matrix-rust-sdk (Element X)
sends them."""

from __future__ import annotations

from typing import Any

import httpx

from tests.integration.sync_helpers import User

__all__ = [
    "ELEMENT_X_REQUIRED_STATE",
    "SLIDING_SYNC",
    "all_rooms",
    "bodies",
    "sliding_sync",
    "sliding_sync_response",
]

SLIDING_SYNC = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"

# What Element X's room list asks for (matrix-rust-sdk room_list_service).
ELEMENT_X_REQUIRED_STATE = [
    ["m.room.encryption", ""],
    ["m.room.member", "$LAZY"],
    ["m.room.member", "$ME"],
    ["m.room.name", ""],
    ["m.room.avatar", ""],
    ["m.room.canonical_alias", ""],
    ["m.room.power_levels", ""],
    ["m.room.join_rules", ""],
    ["m.room.create", ""],
    ["m.room.tombstone", ""],
    ["m.room.topic", ""],
    ["m.room.pinned_events", ""],
    ["m.space.parent", "*"],
]


def all_rooms(
    end: int = 19,
    timeline_limit: int = 1,
    required_state: list[list[str]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Element X's "all_rooms" list: the top rooms by recency."""
    return {
        "lists": {
            "all_rooms": {
                "ranges": [[0, end]],
                "timeline_limit": timeline_limit,
                "required_state": (
                    required_state
                    if required_state is not None
                    else ELEMENT_X_REQUIRED_STATE
                ),
                **extra,
            }
        }
    }


async def sliding_sync_response(
    user: User,
    body: dict[str, Any],
    pos: str | None = None,
    timeout: int | None = None,
    conn_id: str | None = "room-list",
) -> httpx.Response:
    params: dict[str, Any] = {}
    if pos is not None:
        params["pos"] = pos
    if timeout is not None:
        params["timeout"] = timeout
    if conn_id is not None:
        body = {"conn_id": conn_id, **body}
    return await user.client.post(
        SLIDING_SYNC, params=params, json=body, headers=user.headers, timeout=60
    )


async def sliding_sync(
    user: User,
    body: dict[str, Any],
    pos: str | None = None,
    timeout: int | None = None,
    conn_id: str | None = "room-list",
) -> dict[str, Any]:
    resp = await sliding_sync_response(user, body, pos, timeout, conn_id)
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


def bodies(room: dict[str, Any]) -> list[str]:
    """The message bodies of a room response's timeline."""
    return [
        e["content"]["body"]
        for e in room.get("timeline", [])
        if e["type"] == "m.room.message"
    ]
