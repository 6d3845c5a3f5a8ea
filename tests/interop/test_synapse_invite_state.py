"""invite_room_state with a real Synapse (Matrix 1.16 / MSC4311): in a v12 room our invite
carries full PDUs with the create event, which Synapse validates without its warning and shows
as the invite's stripped state; Synapse's invite (full PDUs) is accepted by us and shown the
same way."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.conftest import RunningServer
from tests.integration.room_helpers import User
from tests.interop.synapse_server import SynapseServer
from tests.interop.test_synapse_joins import (  # noqa: F401 (fixtures)
    clients,
    dendrite_peer,
    dl_user,
    eventually,
    syn_user,
    wait_membership,
)

pytestmark = pytest.mark.interop

SYNAPSE_WARNING = "failed to validate `invite_room_state`"


async def _invite_state(user: User, room_id: str) -> list[dict[str, Any]]:
    async def check() -> list[dict[str, Any]] | None:
        rooms = (await user.call("GET", "/sync", params={"timeout": "0"})).json().get("rooms", {})
        room = rooms.get("invite", {}).get(room_id)
        return room["invite_state"]["events"] if room else None

    events: list[dict[str, Any]] = await eventually(check, f"the invite to {room_id} in {user.user_id}'s sync")
    return events


async def test_invite_room_state_both_ways_in_a_v12_room(
    synapse: SynapseServer, dendrite_peer: RunningServer, clients: Any  # noqa: F811
) -> None:
    ours, theirs = clients
    alice = await dl_user(ours, "alice")
    bob = await syn_user(synapse, theirs, "bob")

    room_dl = await alice.create_room(preset="private_chat", name="ours", room_version="12")
    log_from = synapse.log_path.stat().st_size
    await alice.call("POST", f"/rooms/{quote(room_dl)}/invite", {"user_id": bob.user_id})
    shown = await _invite_state(bob, room_dl)
    by_type = {e["type"]: e for e in shown}
    assert by_type["m.room.create"]["content"]["room_version"] == "12"
    assert by_type["m.room.name"]["content"] == {"name": "ours"}
    with open(synapse.log_path, encoding="utf-8", errors="replace") as f:
        f.seek(log_from)
        log = f.read()
    assert SYNAPSE_WARNING not in log
    await bob.call("POST", f"/rooms/{quote(room_dl)}/join", {})
    await wait_membership(alice, room_dl, bob.user_id, "join")

    room_syn = await bob.create_room(preset="private_chat", name="theirs", room_version="12")
    await bob.call("POST", f"/rooms/{quote(room_syn)}/invite", {"user_id": alice.user_id})
    shown = await _invite_state(alice, room_syn)
    by_type = {e["type"]: e for e in shown}
    assert by_type["m.room.create"]["sender"] == bob.user_id
    assert by_type["m.room.name"]["content"] == {"name": "theirs"}
    # Stripped events only, whatever form they came in.
    assert all(set(e) <= {"type", "state_key", "sender", "content"} for e in shown)
