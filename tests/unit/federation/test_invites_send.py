"""Outbound invites to a server that predates /v2/invite (404 M_UNRECOGNIZED): sent again to
/v1/invite (the event itself, stripped state in its unsigned) and the `[200, body]` answer
unwrapped, as Synapse does; an answer whose event is not valid JSON for the room version is
400 M_BAD_JSON."""

from __future__ import annotations

from typing import Any

import pytest

from dendrite_lite.crypto.keys import new_server_key
from dendrite_lite.errors import MatrixError
from dendrite_lite.events.pdu import event_from_pdu, pdu_for_federation
from dendrite_lite.events.room_versions import get_room_version
from dendrite_lite.events.signing import add_event_signature, hash_and_sign_event
from dendrite_lite.federation.client import RemoteError
from dendrite_lite.federation.invites import InviteService

RV = get_room_version("6")
THERE = "there.example"


class _V1OnlyPeer:
    def __init__(self) -> None:
        self.requests: list[tuple[str, Any]] = []
        self.key = new_server_key()

    async def put_json(self, destination: str, path: str, body: Any) -> Any:
        self.requests.append((path, body))
        if path.startswith("/_matrix/federation/v2/"):
            raise RemoteError(destination, 404, {"errcode": "M_UNRECOGNIZED"})
        event = {k: v for k, v in body.items() if k != "unsigned"}
        return [200, {"event": add_event_signature(event, RV, THERE, self.key)}]


def _invite() -> Any:
    pdu = {
        "type": "m.room.member", "room_id": "!r:here.example", "sender": "@a:here.example",
        "state_key": f"@b:{THERE}", "content": {"membership": "invite"}, "depth": 3,
        "prev_events": ["$p"], "auth_events": ["$c"], "origin_server_ts": 1,
    }
    return event_from_pdu(hash_and_sign_event(pdu, RV, "here.example", new_server_key()), RV)


def _service(peer: _V1OnlyPeer) -> InviteService:
    return InviteService(
        None, None, None, server_name="here.example", key=new_server_key(), client=peer,  # type: ignore[arg-type]
    )


async def test_invite_falls_back_to_v1_with_the_stripped_state_in_unsigned() -> None:
    peer, event = _V1OnlyPeer(), _invite()
    stripped = [{"type": "m.room.name", "state_key": "", "sender": "@a:here.example", "content": {"name": "R"}}]
    answer = await _service(peer)._send_invite(THERE, event, stripped)
    assert [p.split("/invite/")[0] for p, _ in peer.requests] == ["/_matrix/federation/v2", "/_matrix/federation/v1"]
    assert peer.requests[1][1]["unsigned"]["invite_room_state"] == stripped
    signed = InviteService._countersigned(answer, event, THERE)
    assert THERE in signed["signatures"]


async def test_a_countersigned_event_with_a_float_is_bad_json() -> None:
    event = _invite()
    returned = {**pdu_for_federation(event), "bad_val": 1.1}
    with pytest.raises(MatrixError) as e:
        InviteService._countersigned({"event": returned}, event, THERE)
    assert (e.value.errcode, e.value.status) == ("M_BAD_JSON", 400)
