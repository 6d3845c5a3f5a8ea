"""A purged room's history comes back over federation (SyTest "Can backfill purged history"):
two real servers, the room made on A with a user of B in it who joined after the room's start,
messages from both; A purges all but the last, and paginating on A backfills the rest from B,
including A's own kept events. B's answer starts at bob's invite, whose prev events only A holds
(kept as outliers by the purge): A places it with the state it recorded for them (B has no
state from before bob's join to give)."""

from __future__ import annotations

from urllib.parse import quote

from tests.conftest import RunningServer
from tests.integration.admin_room_helpers import (
    V1,
    admin_call,
    make_admin,
    wait_for_status,
)
from tests.integration.room_helpers import User, new_user
from tests.integration.test_federation_backfill_state import paginate
from tests.integration.test_federation_forwarding import eventually
from tests.integration.test_federation_membership import pair  # noqa: F401 (fixture)

__all__: list[str] = []


async def _bodies(user: User, room_id: str) -> list[str]:
    resp = await user.call("GET", "/sync", params={"timeout": "0"})
    timeline = (
        resp.json()["rooms"]["join"]
        .get(room_id, {})
        .get("timeline", {})
        .get("events", [])
    )
    return [e["content"].get("body") for e in timeline if e["type"] == "m.room.message"]


async def test_purged_history_is_backfilled_again(
    pair: tuple[RunningServer, RunningServer],
) -> None:  # noqa: F811
    a, b = pair
    admin, alice, bob = (
        await make_admin(a),
        await new_user(a, "alice"),
        await new_user(b, "bob"),
    )
    room_id = await alice.create_room(preset="public_chat", room_version="10")
    # Before bob's join and in no state: B never holds it, so B's answer stops after it.
    await alice.send(room_id, "early")
    await alice.call(
        "POST", f"/rooms/{quote(room_id)}/invite", {"user_id": bob.user_id}
    )
    await bob.call("POST", f"/join/{quote(room_id)}", {})
    sent = [await alice.send(room_id, f"a{i}") for i in range(3)]

    async def bob_has(event_id: str) -> bool:
        resp = await bob.call(
            "GET", f"/rooms/{quote(room_id)}/event/{quote(event_id)}", expect=None
        )
        return resp.status_code == 200

    await eventually(lambda: bob_has(sent[-1]))
    sent += [await bob.send(room_id, f"b{i}") for i in range(3)]

    async def alice_has(event_id: str) -> bool:
        resp = await alice.call(
            "GET", f"/rooms/{quote(room_id)}/event/{quote(event_id)}", expect=None
        )
        return resp.status_code == 200

    await eventually(lambda: alice_has(sent[-1]))

    started = await admin_call(
        admin, "POST", f"{V1}/purge_history/{room_id}/{quote(sent[-1])}", {}
    )
    status = await wait_for_status(
        admin, f"{V1}/purge_history_status/{started.json()['purge_id']}"
    )
    assert status == {"status": "complete"}
    assert await _bodies(alice, room_id) == ["b2"]

    events = await paginate(alice, room_id, 5)
    bodies = [e["content"].get("body") for e in events if e["type"] == "m.room.message"]
    # "early" stays out: only A held it, as an outlier since the purge.
    assert bodies == ["b2", "b1", "b0", "a2", "a1", "a0"]
    assert {"m.room.member"} <= {e["type"] for e in events}
    ids = [e["event_id"] for e in events]
    assert len(ids) == len(set(ids))
