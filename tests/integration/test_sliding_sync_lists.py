"""Simplified sliding sync (MSC4186) list filters (is_dm, is_encrypted, is_invite, room_types,
not_room_types, spaces, tags, not_tags), lists without ranges, a room in several lists, and the
way into it for Element X: well-known, /versions, password login."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import RunningServer
from tests.integration.account_helpers import PASSWORD, login, running_server
from tests.integration.sliding_sync_helpers import SLIDING_SYNC, all_rooms, sliding_sync
from tests.integration.sync_helpers import (
    User,
    create_room,
    join,
    numbered_user,
)


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path_factory.mktemp("sliding-sync-lists")) as s:
        yield s


def _list(filters: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"timeline_limit": 0, "required_state": [], **extra}
    if filters is not None:
        body["filters"] = filters
    return body


async def _counts_and_rooms(
    user: User, lists: dict[str, dict[str, Any]]
) -> tuple[dict[str, int], dict[str, list[str]]]:
    """Each list's count, and which rooms each list holds (from the rooms' `lists`)."""
    body = await sliding_sync(user, {"lists": lists}, conn_id=None)
    held: dict[str, list[str]] = {name: [] for name in lists}
    for room_id, room in body["rooms"].items():
        for name in room.get("lists", []):
            held[name].append(room_id)
    return {k: v["count"] for k, v in body["lists"].items()}, {
        k: sorted(v) for k, v in held.items()
    }


async def test_filters_pick_rooms_by_kind(srv: RunningServer) -> None:
    alice = await numbered_user(srv, "alice")
    bob = await numbered_user(srv, "bob")
    plain = await create_room(alice, name="plain")
    encrypted = await create_room(
        alice,
        name="secret",
        initial_state=[
            {
                "type": "m.room.encryption",
                "state_key": "",
                "content": {"algorithm": "m.megolm.v1.aes-sha2"},
            }
        ],
    )
    space = await create_room(alice, name="space", creation_content={"type": "m.space"})
    in_space = await create_room(alice, name="in space")
    resp = await alice.put(
        f"/rooms/{space}/state/m.space.child/{in_space}", {"via": ["test.localhost"]}
    )
    assert resp.status_code == 200, resp.text
    # A child event without via is a removed child.
    resp = await alice.put(f"/rooms/{space}/state/m.space.child/{plain}", {})
    assert resp.status_code == 200, resp.text
    dm = await create_room(alice, name="dm", invite=[bob.user_id], is_direct=True)
    await join(bob, dm)
    resp = await alice.put(
        f"/user/{alice.user_id}/account_data/m.direct", {bob.user_id: [dm]}
    )
    assert resp.status_code == 200, resp.text
    resp = await alice.put(f"/user/{alice.user_id}/rooms/{plain}/tags/m.favourite", {})
    assert resp.status_code == 200, resp.text
    resp = await alice.put(f"/user/{alice.user_id}/rooms/{encrypted}/tags/u.work", {})
    assert resp.status_code == 200, resp.text
    resp = await alice.put(
        f"/user/{alice.user_id}/rooms/{encrypted}/tags/m.lowpriority", {}
    )
    assert resp.status_code == 200, resp.text
    counts, held = await _counts_and_rooms(
        alice,
        {
            "dms": _list({"is_dm": True}),
            "not_dms": _list({"is_dm": False}),
            "encrypted": _list({"is_encrypted": True}),
            "spaces": _list({"room_types": ["m.space"]}),
            "no_spaces": _list({"not_room_types": ["m.space"]}),
            "untyped": _list({"room_types": [None]}),
            "in_space": _list({"spaces": [space]}),
            "unknown_space": _list({"spaces": ["!unknown:test.localhost"]}),
            "favourites": _list({"tags": ["m.favourite", "u.work"]}),
            "not_low": _list(
                {"tags": ["m.favourite", "u.work"], "not_tags": ["m.lowpriority"]}
            ),
            "encrypted_dms": _list({"is_dm": True, "is_encrypted": True}),
        },
    )
    assert held["dms"] == [dm]
    assert held["not_dms"] == sorted([plain, encrypted, space, in_space])
    assert held["encrypted"] == [encrypted]
    assert held["spaces"] == [space]
    assert held["no_spaces"] == sorted([plain, encrypted, in_space, dm])
    assert held["untyped"] == held["no_spaces"]
    assert held["in_space"] == [in_space]
    assert held["unknown_space"] == []
    assert held["favourites"] == sorted([plain, encrypted])
    assert held["not_low"] == [plain]
    assert held["encrypted_dms"] == []
    assert counts == {name: len(rooms) for name, rooms in held.items()}


async def test_a_room_in_two_lists_gets_both_names_and_the_larger_config(
    srv: RunningServer,
) -> None:
    alice = await numbered_user(srv, "alice")
    room = await create_room(alice, name="both")
    for i in range(3):
        resp = await alice.put(
            f"/rooms/{room}/send/m.room.message/both{i}",
            {"msgtype": "m.text", "body": str(i)},
        )
        assert resp.status_code == 200
    lists = {
        "lists": {
            "small": _list(ranges=[[0, 5]], timeline_limit=1),
            "names": {
                "ranges": [[0, 5]],
                "timeline_limit": 2,
                "required_state": [["m.room.name", ""]],
            },
        }
    }
    body = await sliding_sync(alice, lists)
    room_body = body["rooms"][room]
    assert room_body["lists"] == ["small", "names"]
    assert [e["content"]["body"] for e in room_body["timeline"]] == ["1", "2"]
    assert [e["type"] for e in room_body["required_state"]] == ["m.room.name"]


async def test_a_list_without_ranges_holds_every_room(srv: RunningServer) -> None:
    alice = await numbered_user(srv, "alice")
    rooms = {await create_room(alice) for _ in range(3)}
    body = await sliding_sync(alice, {"lists": {"all": _list()}})
    assert set(body["rooms"]) == rooms and body["lists"]["all"]["count"] == 3
    everything = await sliding_sync(
        alice,
        {"lists": {"all": _list(ranges=[[0, 0]], slow_get_all_rooms=True)}},
        conn_id="slow",
    )
    assert set(everything["rooms"]) == rooms


async def test_element_x_gets_in_with_a_password(srv: RunningServer) -> None:
    """What Element X checks before its first sliding sync: the well-known, the versions'
    unstable feature, the login flows (a password, no OIDC needed) and the login itself."""
    alice = await numbered_user(srv, "alice")
    await create_room(alice, name="after login")
    client = srv.client
    well_known = await client.get("/.well-known/matrix/client")
    assert well_known.status_code == 200
    assert well_known.json()["m.homeserver"]["base_url"]
    versions = (await client.get("/_matrix/client/versions")).json()
    assert versions["unstable_features"]["org.matrix.simplified_msc3575"] is True
    # No OIDC here: the endpoints a client probes for it answer 404 M_UNRECOGNIZED.
    for path in (
        "/_matrix/client/v1/auth_metadata",
        "/_matrix/client/unstable/org.matrix.msc2965/auth_issuer",
    ):
        resp = await client.get(path)
        assert resp.status_code == 404 and resp.json()["errcode"] == "M_UNRECOGNIZED"
    flows = (await client.get("/_matrix/client/v3/login")).json()["flows"]
    assert {"type": "m.login.password"} in [{"type": f["type"]} for f in flows]
    resp = await login(
        client, alice.user_id, PASSWORD, initial_device_display_name="Element X"
    )
    assert resp.status_code == 200, resp.text
    token = resp.json()["access_token"]
    sync = await client.post(
        SLIDING_SYNC,
        json={"conn_id": "room-list", **all_rooms()},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert sync.status_code == 200, sync.text
    assert sync.json()["lists"]["all_rooms"]["count"] == 1


async def test_a_change_of_m_direct_is_sent_as_is_dm(srv: RunningServer) -> None:
    alice = await numbered_user(srv, "alice")
    bob = await numbered_user(srv, "bob")
    room = await create_room(alice, name="becomes a DM")
    body = await sliding_sync(alice, all_rooms())
    assert "is_dm" not in body["rooms"][room]
    resp = await alice.put(
        f"/user/{alice.user_id}/account_data/m.direct", {bob.user_id: [room]}
    )
    assert resp.status_code == 200, resp.text
    marked = await sliding_sync(alice, all_rooms(), pos=body["pos"])
    assert marked["rooms"][room]["is_dm"] is True
    assert (
        "initial" not in marked["rooms"][room]
        and marked["rooms"][room]["timeline"] == []
    )
    assert (await sliding_sync(alice, all_rooms(), pos=marked["pos"]))["rooms"] == {}
    resp = await alice.put(f"/user/{alice.user_id}/account_data/m.direct", {})
    assert resp.status_code == 200, resp.text
    unmarked = await sliding_sync(alice, all_rooms(), pos=marked["pos"])
    assert unmarked["rooms"][room]["is_dm"] is False
