"""GET /admin/whois/{userId} (admin.yaml): the user themselves or a server admin; each device
with its last connection."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from dendrite_lite.api.app import Services
from dendrite_lite.storage import accounts as accounts_table
from tests.conftest import RunningServer
from tests.integration.account_helpers import login, running_server
from tests.integration.sync_helpers import new_user


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path_factory.mktemp("whois")) as s:
        yield s


def _whois(user_id: str) -> str:
    return f"/_matrix/client/v3/admin/whois/{user_id}"


async def test_whois_lists_devices_to_the_user_and_to_admins_only(srv: RunningServer) -> None:
    alice, bob, admin = [await new_user(srv.client, f"whois{n}") for n in ("alice", "bob", "admin")]
    second = (await login(srv.client, alice.user_id)).json()["device_id"]
    await alice.get("/sync", timeout="0")  # marks the first device as seen

    resp = await alice.get(f"/admin/whois/{alice.user_id}")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["user_id"] == alice.user_id
    assert set(body["devices"]) == {alice.device_id, second}
    seen = body["devices"][alice.device_id]["sessions"][0]["connections"][0]
    assert seen["ip"] == "127.0.0.1" and isinstance(seen["last_seen"], int)

    resp = await bob.get(f"/admin/whois/{alice.user_id}")
    assert (resp.status_code, resp.json()["errcode"]) == (403, "M_FORBIDDEN")

    svc: Services = srv.app().extensions["dendrite_lite"]
    await svc.storage.db.write(lambda c: accounts_table.update_account_admin(c, admin.user_id, True))
    resp = await admin.get(f"/admin/whois/{alice.user_id}")
    assert resp.status_code == 200 and set(resp.json()["devices"]) == {alice.device_id, second}
    resp = await admin.get("/admin/whois/@someone:elsewhere.example")
    assert (resp.status_code, resp.json()["errcode"]) == (400, "M_INVALID_PARAM")
    resp = await admin.get("/admin/whois/nobody")
    assert (resp.status_code, resp.json()["errcode"]) == (400, "M_INVALID_PARAM")
    resp = await srv.client.get(_whois(alice.user_id))
    assert (resp.status_code, resp.json()["errcode"]) == (401, "M_MISSING_TOKEN")


async def test_whois_connection_has_the_devices_last_user_agent(srv: RunningServer) -> None:
    """SyTest 48admin.pl "/whois" wants ip, last_seen and user_agent in each connection. The
    last use is written at most once a minute per device, so a second request within the minute
    changes nothing (no database write per request)."""
    carol = await new_user(srv.client, "whoiscarol")
    idle = (await login(srv.client, carol.user_id)).json()["device_id"]
    agent = {**carol.headers, "User-Agent": "WhoisTest/1.0 (first)"}
    resp = await srv.client.get(_whois(carol.user_id), headers=agent)
    assert resp.status_code == 200, resp.text
    devices = resp.json()["devices"]
    [seen] = devices[carol.device_id]["sessions"][0]["connections"]
    assert seen["user_agent"] == "WhoisTest/1.0 (first)"
    assert seen["ip"] == "127.0.0.1" and isinstance(seen["last_seen"], int)
    # Logged in, never used: seen at login, from where, but with no user agent yet.
    [at_login] = devices[idle]["sessions"][0]["connections"]
    assert at_login["user_agent"] is None and at_login["ip"] == "127.0.0.1"

    again = {**carol.headers, "User-Agent": "WhoisTest/2.0 (second)"}
    resp = await srv.client.get(_whois(carol.user_id), headers=again)
    [seen_again] = resp.json()["devices"][carol.device_id]["sessions"][0]["connections"]
    assert seen_again == seen
