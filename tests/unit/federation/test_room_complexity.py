"""Room complexity (federation/room_complexity.py): Synapse's v1 measure, the refusal a user
sees, which resident server's answer counts, and the config keys."""

from __future__ import annotations

from typing import Any, cast

import pytest

from dendrite_lite.config import ConfigError, parse_config
from dendrite_lite.errors import MatrixError
from dendrite_lite.federation.client import (
    FederationClient,
    RemoteError,
    UnreachableError,
)
from dendrite_lite.federation.room_complexity import (
    ComplexityLimit,
    RoomComplexity,
    complexity_v1,
    too_complex,
)
from dendrite_lite.storage import Storage

ROOM = "!big:matrix.example"


class _Peers:
    """Resident servers answering GET .../complexity: a dict body or an error to raise."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.asked: list[tuple[str, str]] = []

    async def get_json(self, destination: str, path: str, **kw: Any) -> Any:
        self.asked.append((destination, path))
        answer = self.answers[destination]
        if isinstance(answer, Exception):
            raise answer
        return answer


def _complexity(peers: _Peers, max_complexity: float = 1.0) -> RoomComplexity:
    # With admins_can_join off nothing is read from storage.
    return RoomComplexity(
        cast(Storage, None), server_name="us.example", client=cast(FederationClient, peers),
        limit=ComplexityLimit(max_complexity),
    )


def test_v1_is_state_events_over_500_rounded_as_synapse() -> None:
    assert complexity_v1(0) == 0
    assert complexity_v1(500) == 1.0
    assert complexity_v1(7) == 0.01
    assert complexity_v1(123_456) == 246.91


def test_the_refusal_is_400_resource_limit_exceeded_with_a_readable_message() -> None:
    error = too_complex(246.91, 10.0)
    assert (error.status, error.errcode) == (400, "M_RESOURCE_LIMIT_EXCEEDED")
    assert error.error.startswith("This room is too large for this server to join")
    assert "123,455 state events" in error.error and "up to 5,000" in error.error


async def test_first_answering_server_decides_and_errors_are_skipped() -> None:
    peers = _Peers({
        "gone.example": UnreachableError("gone.example", "connection refused"),
        "old.example": RemoteError("old.example", 404, {"errcode": "M_UNRECOGNIZED"}),
        "odd.example": {"v2": 3},
        "hs.example": {"v1": 2.5},
        "later.example": {"v1": 0.1},
    })
    assert await _complexity(peers).remote(ROOM, list(peers.answers)) == 2.5
    assert [d for d, _ in peers.asked] == ["gone.example", "old.example", "odd.example", "hs.example"]
    assert peers.asked[0][1] == "/_matrix/federation/unstable/rooms/%21big%3Amatrix.example/complexity"


async def test_too_complex_is_refused_before_the_join() -> None:
    peers = _Peers({"hs.example": {"v1": 1.01}})
    with pytest.raises(MatrixError) as info:
        await _complexity(peers).check_before_join("@u:us.example", ROOM, ["hs.example"])
    assert info.value.errcode == "M_RESOURCE_LIMIT_EXCEEDED"


async def test_at_the_limit_joins_without_a_second_look() -> None:
    peers = _Peers({"hs.example": {"v1": 1.0}})
    assert await _complexity(peers).check_before_join("@u:us.example", ROOM, ["hs.example"]) is False


async def test_no_answer_joins_and_asks_for_a_look_once_joined() -> None:
    peers = _Peers({"hs.example": RemoteError("hs.example", 404, {"errcode": "M_NOT_FOUND"})})
    assert await _complexity(peers).check_before_join("@u:us.example", ROOM, ["hs.example"]) is True


async def test_limit_0_asks_nobody() -> None:
    peers = _Peers({"hs.example": {"v1": 999}})
    assert await _complexity(peers, 0).check_before_join("@u:us.example", ROOM, ["hs.example"]) is False
    assert peers.asked == []


def test_config_defaults_and_values() -> None:
    fed = parse_config({}, None).federation
    assert (fed.max_room_complexity, fed.room_complexity_admins_can_join) == (10.0, False)
    fed = parse_config(
        {"federation": {"max_room_complexity": 0, "room_complexity_admins_can_join": True}}, None
    ).federation
    assert (fed.max_room_complexity, fed.room_complexity_admins_can_join) == (0.0, True)


@pytest.mark.parametrize(
    ("federation", "message"),
    [
        ({"max_room_complexity": -1}, "federation.max_room_complexity: -1 is out of range"),
        ({"max_room_complexity": "big"}, "federation.max_room_complexity: expected a number"),
        ({"room_complexity_admins_can_join": "yes"}, "federation.room_complexity_admins_can_join"),
        ({"max_room_complexty": 2}, "max_room_complexity"),
    ],
)
def test_config_errors_name_the_key(federation: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"federation": federation}, None)
    assert message in str(info.value)
