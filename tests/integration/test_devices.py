"""GET /devices, GET/PUT/DELETE /devices/{deviceId}, POST /delete_devices, over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.conftest import RunningServer
from tests.integration.account_helpers import (
    V3,
    auth_header,
    login,
    register,
    running_server,
    uia_password,
)
from tests.spec_schema import assert_matches_operation

SPEC = "client-server/device_management.yaml"


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path_factory.mktemp("devices")) as s:
        yield s


@pytest.fixture
def client(srv: RunningServer) -> httpx.AsyncClient:
    return srv.client


async def test_list_get_rename(client: httpx.AsyncClient) -> None:
    me = await register(client, "ann", device_id="A1", initial_device_display_name="Phone")
    await login(client, "ann", device_id="A2")
    h = auth_header(me["access_token"])
    resp = await client.get(f"{V3}/devices", headers=h)
    assert resp.status_code == 200
    assert_matches_operation(SPEC, "/devices", "get", 200, resp.json())
    devices = resp.json()["devices"]
    assert [d["device_id"] for d in devices] == ["A1", "A2"]
    assert devices[0]["display_name"] == "Phone" and "display_name" not in devices[1]
    assert devices[0]["last_seen_ip"] == "127.0.0.1" and devices[0]["last_seen_ts"] > 0

    resp = await client.put(f"{V3}/devices/A2", json={"display_name": "Tablet"}, headers=h)
    assert (resp.status_code, resp.json()) == (200, {})
    resp = await client.get(f"{V3}/devices/A2", headers=h)
    assert resp.json()["display_name"] == "Tablet"
    assert_matches_operation(SPEC, "/devices/{deviceId}", "get", 200, resp.json())
    # No display_name: unchanged.
    assert (await client.put(f"{V3}/devices/A2", json={}, headers=h)).status_code == 200
    assert (await client.get(f"{V3}/devices/A2", headers=h)).json()["display_name"] == "Tablet"
    bad = await client.put(f"{V3}/devices/A2", json={"display_name": 5}, headers=h)
    assert (bad.status_code, bad.json()["errcode"]) == (400, "M_INVALID_PARAM")


async def test_unknown_and_foreign_devices_are_404(client: httpx.AsyncClient) -> None:
    me = await register(client, "bea", device_id="B1")
    them = await register(client, "cal", device_id="C1")
    h = auth_header(me["access_token"])
    for path in (f"{V3}/devices/NOPE", f"{V3}/devices/C1"):
        resp = await client.get(path, headers=h)
        assert (resp.status_code, resp.json()["errcode"]) == (404, "M_NOT_FOUND")
        resp = await client.put(path, json={"display_name": "x"}, headers=h)
        assert (resp.status_code, resp.json()["errcode"]) == (404, "M_NOT_FOUND")
    assert (await client.get(f"{V3}/devices/C1", headers=auth_header(them["access_token"]))).status_code == 200
    assert (await client.get(f"{V3}/devices")).json()["errcode"] == "M_MISSING_TOKEN"


async def test_delete_device_needs_uia_and_revokes_tokens(client: httpx.AsyncClient) -> None:
    me = await register(client, "dee", device_id="D1")
    other = (await login(client, "dee", device_id="D2")).json()
    h = auth_header(me["access_token"])
    first = await client.request("DELETE", f"{V3}/devices/D2", headers=h)  # no body at all
    assert first.status_code == 401
    assert_matches_operation(SPEC, "/devices/{deviceId}", "delete", 401, first.json())
    resp = await uia_password(client, "DELETE", f"{V3}/devices/D2", me["access_token"], "dee")
    assert (resp.status_code, resp.json()) == (200, {})
    assert (await client.get(f"{V3}/account/whoami", headers=auth_header(other["access_token"]))).status_code == 401
    assert [d["device_id"] for d in (await client.get(f"{V3}/devices", headers=h)).json()["devices"]] == ["D1"]
    # Deleting a device that is already gone is fine (spec: 200).
    resp = await uia_password(client, "DELETE", f"{V3}/devices/D2", me["access_token"], "dee")
    assert resp.status_code == 200


async def test_delete_devices_bulk(client: httpx.AsyncClient) -> None:
    me = await register(client, "eve", device_id="E1")
    tokens = [(await login(client, "eve", device_id=d)).json()["access_token"] for d in ("E2", "E3", "E4")]
    h = auth_header(me["access_token"])
    resp = await uia_password(client, "POST", f"{V3}/delete_devices", me["access_token"], "eve",
                              {"devices": ["E2", "E3", "UNKNOWN"]})
    assert (resp.status_code, resp.json()) == (200, {})
    ids = [d["device_id"] for d in (await client.get(f"{V3}/devices", headers=h)).json()["devices"]]
    assert ids == ["E1", "E4"]
    codes = [(await client.get(f"{V3}/account/whoami", headers=auth_header(t))).status_code for t in tokens]
    assert codes == [401, 401, 200]
    bad = await client.post(f"{V3}/delete_devices", json={"devices": "E4"}, headers=h)
    assert (bad.status_code, bad.json()["errcode"]) == (400, "M_BAD_JSON")


async def test_delete_devices_session_bound_to_device_list(client: httpx.AsyncClient) -> None:
    me = await register(client, "fay", device_id="F1")
    await login(client, "fay", device_id="F2")
    h = auth_header(me["access_token"])
    first = await client.post(f"{V3}/delete_devices", json={"devices": ["F2"]}, headers=h)
    auth = {"type": "m.login.password", "session": first.json()["session"],
            "identifier": {"type": "m.id.user", "user": "fay"}, "password": "correct horse battery staple"}
    resp = await client.post(f"{V3}/delete_devices", json={"devices": ["F1", "F2"], "auth": auth}, headers=h)
    assert (resp.status_code, resp.json()["errcode"]) == (403, "M_FORBIDDEN")
    assert len((await client.get(f"{V3}/devices", headers=h)).json()["devices"]) == 2
