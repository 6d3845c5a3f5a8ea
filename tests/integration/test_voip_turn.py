"""GET /voip/turnServer with a [turn] section: per-user expiring credentials from a shared
secret, static ones otherwise, and the guest switch. (Unconfigured: test_misc_endpoints.py;
coturn accepting what we hand out: tests/interop/test_coturn.py.)"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from dendrite_lite.config import TurnConfig
from dendrite_lite.turn_credentials import rest_api_password
from tests.conftest import RunningServer
from tests.integration.account_helpers import V3, register, running_server
from tests.spec_schema import assert_matches_operation

URIS = ("turn:127.0.0.1:3478?transport=udp", "turn:127.0.0.1:3478?transport=tcp")


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    overrides = {
        "registration.allow_guests": True,
        "turn": TurnConfig(uris=URIS, shared_secret="north", user_lifetime_s=7200, allow_guests=False),
    }
    async with running_server(tmp_path_factory.mktemp("turn"), overrides) as s:
        yield s


async def _turn(srv: RunningServer, token: str):  # type: ignore[no-untyped-def]
    return await srv.client.get(f"{V3}/voip/turnServer", headers={"Authorization": f"Bearer {token}"})


async def test_a_user_gets_credentials_of_their_own_that_expire(srv: RunningServer) -> None:
    alice = await register(srv.client, "turn_alice")
    bob = await register(srv.client, "turn_bob")
    before = int(time.time())
    resp = await _turn(srv, alice["access_token"])
    after = int(time.time())
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert_matches_operation("client-server/voip.yaml", "/voip/turnServer", "get", 200, body)
    expiry, _, user_id = body["username"].partition(":")
    assert user_id == alice["user_id"]
    assert before + 7200 <= int(expiry) <= after + 7200
    assert body["password"] == rest_api_password("north", body["username"])
    assert body["uris"] == list(URIS) and body["ttl"] == 7200
    other = (await _turn(srv, bob["access_token"])).json()
    assert other["username"].endswith(":" + bob["user_id"]) and other["password"] != body["password"]


async def test_guests_are_refused_when_turn_allow_guests_is_off(srv: RunningServer) -> None:
    guest = await srv.client.post(f"{V3}/register", params={"kind": "guest"}, json={})
    assert guest.status_code == 200, guest.text
    resp = await _turn(srv, guest.json()["access_token"])
    assert resp.status_code == 403 and resp.json()["errcode"] == "M_GUEST_ACCESS_FORBIDDEN"


async def test_static_credentials_and_guests_allowed(tmp_path_factory: pytest.TempPathFactory) -> None:
    overrides = {
        "registration.allow_guests": True,
        "turn": TurnConfig(uris=URIS[:1], username="family", password="hunter2"),
    }
    async with running_server(tmp_path_factory.mktemp("turn-static"), overrides) as srv:
        guest = await srv.client.post(f"{V3}/register", params={"kind": "guest"}, json={})
        resp = await _turn(srv, guest.json()["access_token"])
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"username": "family", "password": "hunter2", "uris": [URIS[0]], "ttl": 86400}
