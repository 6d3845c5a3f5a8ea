"""A guest invited to a room on another server (guest_access.md §Server behaviour): it may join
only when the invite's room state shows m.room.guest_access can_join; the room is not ours, so
unknown counts as no."""

from __future__ import annotations

from urllib.parse import quote

from dendrite_lite.users.registration import register_guest
from tests.conftest import RunningServer, with_overrides
from tests.integration.room_helpers import new_user
from tests.integration.sync_helpers import User
from tests.integration.test_federation_membership import _services, pair  # noqa: F401 (fixture)


async def _guest(srv: RunningServer) -> User:
    # The pair's servers keep guests off; the registration service is told otherwise.
    config = with_overrides(srv.config, {"registration.allow_guests": True})
    body = (await register_guest(_services(srv).storage, config, {})).to_json()
    return User(srv.client, body["user_id"], body["access_token"], body["device_id"])


async def test_guest_joins_a_remote_room_only_with_guest_access(
    pair: tuple[RunningServer, RunningServer],  # noqa: F811
) -> None:
    a, b = pair
    alice = await new_user(a, "alice")
    guest = await _guest(b)
    for access, status in (("forbidden", 403), ("can_join", 200)):
        room_id = await alice.create_room(preset="private_chat", initial_state=[
            {"type": "m.room.guest_access", "state_key": "", "content": {"guest_access": access}},
        ])
        resp = await alice.call("POST", f"/rooms/{room_id}/invite", {"user_id": guest.user_id})
        assert resp.status_code == 200, resp.text
        resp = await guest.post(f"/join/{quote(room_id)}", {})
        assert resp.status_code == status, (access, resp.text)
    # No invite: nothing tells us the room's guest access.
    public = await alice.create_room(preset="public_chat")
    assert (await guest.post(f"/join/{quote(public)}", {})).status_code == 403
