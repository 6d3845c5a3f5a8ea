"""GET /voip/turnServer and GET /thirdparty/protocols: what clients call at start."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.integration.user_data_helpers import World, open_world
from tests.spec_schema import assert_matches_operation


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async for w in open_world(tmp_path_factory.mktemp("misc")):
        yield w


async def test_turn_server_unconfigured_is_empty(world: World) -> None:
    resp = await world.call("alice", "GET", "/voip/turnServer")
    # Synapse's answer without TURN: clients see no `uris` and call without a relay.
    assert resp.status_code == 200 and resp.json() == {}


async def test_thirdparty_protocols_empty(world: World) -> None:
    resp = await world.call("alice", "GET", "/thirdparty/protocols")
    assert resp.status_code == 200 and resp.json() == {}
    assert_matches_operation("client-server/third_party_lookup.yaml", "/thirdparty/protocols", "get", 200, resp.json())


@pytest.mark.parametrize("path", ["/voip/turnServer", "/thirdparty/protocols"])
async def test_need_a_token(world: World, path: str) -> None:
    resp = await world.client.get(f"/_matrix/client/v3{path}")
    assert resp.status_code == 401 and resp.json()["errcode"] == "M_MISSING_TOKEN"
