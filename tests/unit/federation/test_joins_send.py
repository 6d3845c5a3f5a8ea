"""send_join/send_leave to a server that predates v2 (404 M_UNRECOGNIZED): the handshake falls
back to v1 and unwraps its `[200, body]` answer, as Synapse does; other errors are not retried."""

from __future__ import annotations

from typing import Any

import pytest

from dendrite_lite.crypto.keys import new_server_key
from dendrite_lite.errors import MatrixError
from dendrite_lite.events.pdu import event_from_pdu
from dendrite_lite.events.room_versions import get_room_version
from dendrite_lite.events.signing import hash_and_sign_event
from dendrite_lite.federation.client import RemoteError
from dendrite_lite.federation.joins import Handshake, MembershipHandshake

RV = get_room_version("10")


class _V1OnlyPeer:
    def __init__(self, v2_error: RemoteError) -> None:
        self.v2_error = v2_error
        self.paths: list[str] = []

    async def put_json(self, destination: str, path: str, body: Any) -> Any:
        self.paths.append(path)
        if path.startswith("/_matrix/federation/v2/"):
            raise self.v2_error
        return [200, {"state": [], "auth_chain": [], "origin": destination}]


def _handshake() -> Handshake:
    key = new_server_key()
    pdu = {
        "type": "m.room.member", "room_id": "!r:old.example", "sender": "@a:here.example",
        "state_key": "@a:here.example", "content": {"membership": "join"}, "depth": 3,
        "prev_events": ["$p"], "auth_events": ["$c"], "origin_server_ts": 1,
    }
    signed = hash_and_sign_event(pdu, RV, "here.example", key)
    return Handshake("old.example", RV, event_from_pdu(signed, RV))


@pytest.mark.parametrize(
    "v2_error",
    [
        RemoteError("old.example", 404, {"errcode": "M_UNRECOGNIZED"}),
        RemoteError("old.example", 404, "<html>not found</html>"),
        RemoteError("old.example", 400, {"errcode": "M_UNRECOGNIZED"}),
    ],
)
async def test_send_join_falls_back_to_v1_and_unwraps_the_answer(v2_error: RemoteError) -> None:
    peer = _V1OnlyPeer(v2_error)
    hs = MembershipHandshake(peer, server_name="here.example", key=new_server_key())  # type: ignore[arg-type]
    answer = await hs.send(_handshake(), "join")
    assert answer == {"state": [], "auth_chain": [], "origin": "old.example"}
    assert [p.split("/send_join/")[0] for p in peer.paths] == ["/_matrix/federation/v2", "/_matrix/federation/v1"]


async def test_a_real_404_is_not_retried_with_v1() -> None:
    peer = _V1OnlyPeer(RemoteError("old.example", 404, {"errcode": "M_NOT_FOUND", "error": "no room"}))
    hs = MembershipHandshake(peer, server_name="here.example", key=new_server_key())  # type: ignore[arg-type]
    with pytest.raises(MatrixError) as e:
        await hs.send(_handshake(), "leave")
    assert e.value.errcode == "M_NOT_FOUND"
    assert len(peer.paths) == 1
