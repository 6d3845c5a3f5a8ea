"""Dehydrated devices (MSC3814 under /_matrix/client/unstable/org.matrix.msc3814.v1/): PUT/GET/
DELETE the device, its to-device messages through .../events (kept, paged, never in /sync), and
replacement deleting the old device with its keys.

The dehydrated device is a real vodozemac Olm account, as Element's: Alice claims its one-time
key, opens an Olm session and sends it a message; the "rehydrated" account, unpickled from the
device_data the server kept, decrypts what /events hands back.
"""

from __future__ import annotations

import base64
import dataclasses
import itertools
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import vodozemac

from tests.conftest import RunningServer
from tests.integration.account_helpers import running_server, uia_password
from tests.integration.dehydrated_helpers import OLM, PATH, PICKLE_KEY, Dehydrated
from tests.integration.e2ee_helpers import DeviceKeyring
from tests.integration.sync_helpers import User, new_user, sync

_names = itertools.count(1)
_txns = itertools.count(1)


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    async with running_server(
        tmp_path_factory.mktemp("dehydrated"), {"registration.allow_guests": True}
    ) as s:
        yield s


async def _user(srv: RunningServer) -> User:
    return await new_user(srv.client, f"dh{next(_names)}")


def _unpadded(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


async def _request(user: User, method: str, path: str = "", body: Any = None, **params: Any) -> Any:
    resp = await user.client.request(
        method, f"{PATH}{path}", json=body, params=params, headers=user.headers
    )
    return resp


async def _put(user: User, body: dict[str, Any]) -> None:
    resp = await _request(user, "PUT", body=body)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"device_id": body["device_id"]}


async def _dehydrate(user: User) -> Dehydrated:
    device = Dehydrated(user.user_id)
    await _put(user, device.body())
    return device


async def _events(user: User, device_id: str, next_batch: str | None = None, **params: Any) -> Any:
    body = {} if next_batch is None else {"next_batch": next_batch}
    resp = await _request(user, "POST", f"/{quote(device_id, safe='')}/events", body, **params)
    assert resp.status_code == 200, resp.text
    return resp.json()


async def _all_events(user: User, device_id: str, limit: int) -> list[dict[str, Any]]:
    """Page through /events the way a rehydrating client does: until an empty batch."""
    out: list[dict[str, Any]] = []
    token = None
    while True:
        batch = await _events(user, device_id, token, limit=limit)
        if not batch["events"]:
            return out
        out += batch["events"]
        token = batch["next_batch"]


async def _send(sender: User, messages: dict[str, Any], event_type: str = "m.test") -> None:
    resp = await sender.put(f"/sendToDevice/{event_type}/{next(_txns)}", {"messages": messages})
    assert resp.status_code == 200, resp.text


async def _device_ids(user: User) -> set[str]:
    resp = await user.get("/devices")
    return {d["device_id"] for d in resp.json()["devices"]}


async def _queried_devices(asker: User, user_id: str) -> set[str]:
    resp = await asker.post("/keys/query", {"device_keys": {user_id: []}})
    return set(resp.json()["device_keys"].get(user_id, {}))


async def _claim(asker: User, user_id: str, device_id: str) -> dict[str, Any]:
    resp = await asker.post(
        "/keys/claim", {"one_time_keys": {user_id: {device_id: "signed_curve25519"}}}
    )
    assert resp.status_code == 200, resp.text
    return resp.json()["one_time_keys"].get(user_id, {}).get(device_id, {})  # type: ignore[no-any-return]


# --- real crypto -------------------------------------------------------------------------------


async def test_offline_device_receives_olm_message_and_rehydrates(srv: RunningServer) -> None:
    alice, bob = await _user(srv), await _user(srv)
    parked = await _dehydrate(bob)
    # Alice finds the device and its one-time key like any other device of Bob's.
    assert parked.device_id in await _queried_devices(alice, bob.user_id)
    (key_id, signed_key), = (await _claim(alice, bob.user_id, parked.device_id)).items()
    assert key_id.startswith("signed_curve25519:")
    sender = vodozemac.Account()
    session = sender.create_outbound_session(
        parked.account.curve25519_key, vodozemac.Curve25519PublicKey.from_base64(signed_key["key"])
    )
    plaintext = json.dumps({"type": "m.room_key", "content": {"session_key": "s3cret"}})
    kind, ciphertext = session.encrypt(plaintext.encode()).to_parts()
    content = {
        "algorithm": OLM,
        "sender_key": sender.curve25519_key.to_base64(),
        "ciphertext": {parked.device_id: {"type": kind, "body": _unpadded(ciphertext)}},
    }
    await _send(alice, {bob.user_id: {"*": content}}, "m.room.encrypted")
    # Bob's live device gets its copy through /sync; the parked one's stays for /events.
    synced = (await sync(bob))["to_device"]["events"]
    assert [e["type"] for e in synced] == ["m.room.encrypted"]

    got = await _request(bob, "GET")
    assert got.status_code == 200, got.text
    assert got.json()["device_id"] == parked.device_id
    pickle = got.json()["device_data"]["device_pickle"]
    rehydrated = vodozemac.Account.from_pickle(pickle, PICKLE_KEY)
    (event,) = await _all_events(bob, parked.device_id, limit=10)
    assert event["sender"] == alice.user_id and event["type"] == "m.room.encrypted"
    olm = event["content"]["ciphertext"][parked.device_id]
    body = base64.b64decode(olm["body"] + "=" * (-len(olm["body"]) % 4))
    message = vodozemac.AnyOlmMessage.from_parts(olm["type"], body).to_pre_key()
    _, decrypted = rehydrated.create_inbound_session(
        vodozemac.Curve25519PublicKey.from_base64(event["content"]["sender_key"]), message
    )
    assert json.loads(decrypted) == json.loads(plaintext)


# --- the device and its messages ---------------------------------------------------------------


async def test_put_get_and_listed_as_a_device(srv: RunningServer) -> None:
    bob = await _user(srv)
    parked = Dehydrated(bob.user_id)
    body = parked.body()
    await _put(bob, body)
    resp = await _request(bob, "GET")
    assert resp.json() == {"device_id": parked.device_id, "device_data": body["device_data"]}
    assert parked.device_id in await _device_ids(bob)
    device = (await bob.get(f"/devices/{parked.in_path}")).json()
    assert device["display_name"] == "Dehydrated device"


async def test_events_paged_kept_and_never_synced(srv: RunningServer) -> None:
    alice, bob = await _user(srv), await _user(srv)
    parked = await _dehydrate(bob)
    for i in range(5):
        await _send(alice, {bob.user_id: {parked.device_id: {"i": i}}})
    await _send(alice, {bob.user_id: {bob.device_id: {"live": True}}})
    first = await _events(bob, parked.device_id, limit=2)
    assert [e["content"]["i"] for e in first["events"]] == [0, 1]
    second = await _events(bob, parked.device_id, first["next_batch"], limit=2)
    assert [e["content"]["i"] for e in second["events"]] == [2, 3]
    third = await _events(bob, parked.device_id, second["next_batch"], limit=2)
    assert [e["content"]["i"] for e in third["events"]] == [4]
    # The last batch still carries a token, which then answers with nothing (MSC3814).
    assert (await _events(bob, parked.device_id, third["next_batch"])) == {
        "events": [], "next_batch": third["next_batch"]
    }
    # Reading deleted nothing: an aborted rehydration starts over.
    assert len(await _all_events(bob, parked.device_id, limit=100)) == 5
    # /sync of the live device (acknowledging too) never touches the parked one's inbox.
    first_sync = await sync(bob)
    assert [e["content"] for e in first_sync["to_device"]["events"]] == [{"live": True}]
    await sync(bob, since=first_sync["next_batch"])
    assert len(await _all_events(bob, parked.device_id, limit=100)) == 5


async def test_get_events_form_has_next_batch_only_while_more(srv: RunningServer) -> None:
    alice, bob = await _user(srv), await _user(srv)
    parked = await _dehydrate(bob)
    for i in range(3):
        await _send(alice, {bob.user_id: {parked.device_id: {"i": i}}})
    url = f"/{parked.in_path}/events"
    first = (await _request(bob, "GET", url, limit=2)).json()
    assert [e["content"]["i"] for e in first["events"]] == [0, 1]
    rest = (await _request(bob, "GET", url, limit=2, **{"from": first["next_batch"]})).json()
    assert rest == {"events": [{"sender": alice.user_id, "type": "m.test", "content": {"i": 2}}]}


async def test_device_and_messages_survive_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with running_server(data) as srv:
        alice, bob = await _user(srv), await _user(srv)
        parked = await _dehydrate(bob)
        await _send(alice, {bob.user_id: {parked.device_id: {"kept": True}}})
        key_file = srv.config.signing_key_path
    key_file.unlink()  # the launcher writes a fresh key at each start; the database stays
    async with running_server(data) as srv:
        bob = dataclasses.replace(bob, client=srv.client)
        assert (await _request(bob, "GET")).json()["device_id"] == parked.device_id
        events = await _all_events(bob, parked.device_id, limit=10)
        assert [e["content"] for e in events] == [{"kept": True}]


# --- replacement and deletion ------------------------------------------------------------------


async def test_put_replaces_and_deletes_the_old_device_and_its_keys(srv: RunningServer) -> None:
    alice, bob = await _user(srv), await _user(srv)
    room = (await alice.post("/createRoom", {"invite": [bob.user_id]})).json()["room_id"]
    assert (await bob.post(f"/rooms/{room}/join", {})).status_code == 200
    old = await _dehydrate(bob)
    await _send(alice, {bob.user_id: {old.device_id: {"for": "old"}}})
    since = (await sync(alice))["next_batch"]
    new = await _dehydrate(bob)

    assert (await _request(bob, "GET")).json()["device_id"] == new.device_id
    devices = await _device_ids(bob)
    assert new.device_id in devices and old.device_id not in devices
    assert await _queried_devices(alice, bob.user_id) == {new.device_id}  # the live one has none
    assert await _claim(alice, bob.user_id, old.device_id) == {}
    assert await _claim(alice, bob.user_id, new.device_id) != {}
    # Room-mates hear of the change, to re-query Bob's keys.
    assert bob.user_id in (await sync(alice, since=since))["device_lists"]["changed"]
    # The old inbox went with the old device; the new one starts empty.
    resp = await _request(bob, "POST", f"/{old.in_path}/events", {})
    assert resp.status_code == 403 and resp.json()["errcode"] == "M_FORBIDDEN"
    assert await _all_events(bob, new.device_id, limit=10) == []


async def test_put_again_with_the_same_device_id(srv: RunningServer) -> None:
    bob = await _user(srv)
    parked = await _dehydrate(bob)
    body = parked.body()
    body["device_data"]["extra"] = 1
    await _put(bob, body)
    assert (await _request(bob, "GET")).json()["device_data"]["extra"] == 1


async def test_delete(srv: RunningServer) -> None:
    alice, bob = await _user(srv), await _user(srv)
    parked = await _dehydrate(bob)
    resp = await _request(bob, "DELETE")
    assert resp.status_code == 200 and resp.json() == {"device_id": parked.device_id}
    assert parked.device_id not in await _device_ids(bob)
    assert parked.device_id not in await _queried_devices(alice, bob.user_id)
    for method in ("GET", "DELETE"):
        resp = await _request(bob, method)
        assert resp.status_code == 404 and resp.json()["errcode"] == "M_NOT_FOUND", method


async def test_deleted_through_devices_api_is_no_longer_dehydrated(srv: RunningServer) -> None:
    bob = await _user(srv)
    parked = await _dehydrate(bob)
    local = bob.user_id.split(":")[0][1:]
    path = f"/_matrix/client/v3/devices/{parked.in_path}"
    resp = await uia_password(bob.client, "DELETE", path, bob.token, local)
    assert resp.status_code == 200, resp.text
    assert (await _request(bob, "GET")).status_code == 404


async def test_device_id_of_a_logged_in_device_is_refused(srv: RunningServer) -> None:
    bob = await _user(srv)
    body = Dehydrated(bob.user_id).body()
    keyring = DeviceKeyring.of(bob)  # the live device's own, validly signed keys
    resp = await _request(
        bob, "PUT", body={**body, "device_id": bob.device_id, "device_keys": keyring.device_keys()}
    )
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_INVALID_PARAM", resp.text
    assert (await _request(bob, "GET")).status_code == 404
    assert (await bob.get("/account/whoami")).status_code == 200  # the live device is untouched


# --- errors -----------------------------------------------------------------------------------


def _without(body: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != key}


@pytest.mark.parametrize(
    "mangle, errcode",
    [
        (lambda b: _without(b, "device_keys"), "M_MISSING_PARAM"),
        (lambda b: _without(b, "device_id"), "M_MISSING_PARAM"),
        (lambda b: _without(b, "device_data"), "M_MISSING_PARAM"),
        (lambda b: {**b, "device_data": {"pickle": "x"}}, "M_MISSING_PARAM"),
        (lambda b: {**b, "device_data": "x"}, "M_BAD_JSON"),
        (lambda b: {**b, "device_id": ""}, "M_INVALID_PARAM"),
        (lambda b: {**b, "initial_device_display_name": 5}, "M_BAD_JSON"),
        # Keys of another device id than the one dehydrated.
        (lambda b: {**b, "device_id": "OTHER"}, "M_INVALID_PARAM"),
        # Device keys not of the DeviceKeys shape.
        (lambda b: {**b, "device_keys": {**b["device_keys"], "algorithms": "m.olm"}}, "M_BAD_JSON"),
        (lambda b: {**b, "one_time_keys": {"nocolon": "k"}}, "M_INVALID_PARAM"),
    ],
)
async def test_put_bad_bodies(srv: RunningServer, mangle: Any, errcode: str) -> None:
    bob = await _user(srv)
    resp = await _request(bob, "PUT", body=mangle(Dehydrated(bob.user_id).body()))
    assert resp.status_code == 400, resp.text
    assert resp.json()["errcode"] == errcode
    assert (await _request(bob, "GET")).status_code == 404  # nothing stored


async def test_events_errors(srv: RunningServer) -> None:
    alice, bob = await _user(srv), await _user(srv)
    resp = await _request(bob, "POST", "/ANY/events", {})
    assert resp.status_code == 403 and resp.json()["errcode"] == "M_FORBIDDEN"  # none at all
    parked = await _dehydrate(bob)
    for asker, device_id in ((bob, bob.device_id), (alice, parked.in_path)):
        resp = await _request(asker, "POST", f"/{device_id}/events", {})
        assert resp.status_code == 403 and resp.json()["errcode"] == "M_FORBIDDEN", device_id
    url = f"/{parked.in_path}/events"
    for body, params in [
        ({"next_batch": "s12"}, {}),
        ({"next_batch": "d-1"}, {}),
        ({"next_batch": "d"}, {}),
        ({}, {"limit": "0"}),
        ({}, {"limit": "many"}),
    ]:
        resp = await _request(bob, "POST", url, body, **params)
        assert resp.status_code == 400 and resp.json()["errcode"] == "M_INVALID_PARAM", (body, params)
    resp = await _request(bob, "POST", url, {"next_batch": 5})
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_BAD_JSON"
    resp = await _request(bob, "GET", url, **{"from": "x1"})
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_INVALID_PARAM"


@pytest.mark.parametrize("method, path", [
    ("PUT", ""), ("GET", ""), ("DELETE", ""), ("POST", "/D/events"), ("GET", "/D/events")
])
async def test_needs_a_user_not_a_guest(srv: RunningServer, method: str, path: str) -> None:
    resp = await srv.client.request(method, f"{PATH}{path}", json={})
    assert resp.status_code == 401 and resp.json()["errcode"] == "M_MISSING_TOKEN"
    guest = await srv.client.post("/_matrix/client/v3/register?kind=guest", json={})
    assert guest.status_code == 200, guest.text
    headers = {"Authorization": f"Bearer {guest.json()['access_token']}"}
    resp = await srv.client.request(method, f"{PATH}{path}", json={}, headers=headers)
    assert resp.status_code == 403 and resp.json()["errcode"] == "M_GUEST_ACCESS_FORBIDDEN"
