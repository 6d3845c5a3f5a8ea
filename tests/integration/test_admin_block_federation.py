"""A room blocked by a server admin (the admin rooms API) is closed over federation too, on two
real servers: a user of another server cannot join it through us (make_join refused), and an
invite from another server into it does not reach our users (/invite refused), also for a
room we never held, blocked ahead."""

from __future__ import annotations

from urllib.parse import quote

from tests.conftest import RunningServer
from tests.integration.admin_room_helpers import V1, admin_call, make_admin
from tests.integration.room_helpers import new_user
from tests.integration.test_federation_membership import name, pair  # noqa: F401 (fixture)

__all__: list[str] = []


async def test_blocked_rooms_refuse_remote_joins_and_invites(
    pair: tuple[RunningServer, RunningServer],  # noqa: F811
) -> None:
    a, b = pair
    admin, alice, bob = (
        await make_admin(a),
        await new_user(a, "alice"),
        await new_user(b, "bob"),
    )
    ours = await alice.create_room(preset="public_chat")
    await admin_call(admin, "PUT", f"{V1}/rooms/{ours}/block", {"block": True})
    join = await bob.call(
        "POST", f"/join/{quote(ours)}", {}, params={"server_name": name(a)}, expect=None
    )
    assert (join.status_code, join.json()["errcode"]) == (403, "M_FORBIDDEN")

    theirs = await bob.create_room(preset="private_chat")
    await admin_call(admin, "PUT", f"{V1}/rooms/{theirs}/block", {"block": True})
    invite = await bob.call(
        "POST",
        f"/rooms/{quote(theirs)}/invite",
        {"user_id": alice.user_id},
        expect=None,
    )
    assert (invite.status_code, invite.json()["errcode"]) == (403, "M_FORBIDDEN")
    # Unblocked, the same invite goes through and alice can join.
    await admin_call(admin, "PUT", f"{V1}/rooms/{theirs}/block", {"block": False})
    await bob.call("POST", f"/rooms/{quote(theirs)}/invite", {"user_id": alice.user_id})
    await alice.call(
        "POST", f"/join/{quote(theirs)}", {}, params={"server_name": name(b)}
    )
