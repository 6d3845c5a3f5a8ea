"""Homeserver -> application service: transactions of the events in an AS's namespaces (in
order, hs_token bearer, retried with the same txnId through an outage, persisted across a
restart), user and alias queries, pings both ways and third-party lookups
(application-service-api)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from aiohttp import web

from tests.conftest import SERVER_NAME, RunningServer
from tests.integration.account_helpers import V3, auth_header, login, running_server
from tests.integration.appservice_fake import (
    FakeAppservice,
    fake_appservice,
    write_registration,
)
from tests.integration.room_helpers import User, new_user

AS = "relay"
FAST_RETRY = {"appservices.retry_initial_s": 0.2, "appservices.retry_max_s": 0.5}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _registration(directory: Path, fake_url: str, hs_token: str) -> Path:
    return write_registration(
        directory, AS, url=fake_url, hs_token=hs_token,
        namespaces={
            "users": [{"regex": rf"@relay_.*:{SERVER_NAME}", "exclusive": True}],
            "aliases": [{"regex": rf"#relay_.*:{SERVER_NAME}", "exclusive": True}],
            "rooms": [],
        },
        protocols=["ymca"],
        receive_ephemeral=True,
        **{"org.matrix.msc3202": True},
    )


class Bridge:
    """The running server, the fake AS, and requests made with the AS's token."""

    def __init__(self, srv: RunningServer, fake: FakeAppservice, as_token: str) -> None:
        self.srv, self.fake, self.as_token = srv, fake, as_token

    async def call(self, method: str, path: str, body: Any = None, **params: str) -> Any:
        url = path if path.startswith("/_matrix") else f"{V3}{path}"
        return await self.srv.client.request(
            method, url, json=body, headers=auth_header(self.as_token), params=params
        )

    async def ghost(self, localpart: str) -> str:
        resp = await self.call("POST", "/register", {
            "type": "m.login.application_service", "username": localpart, "inhibit_login": True,
        })
        assert resp.status_code == 200, resp.text
        return str(resp.json()["user_id"])


@asynccontextmanager
async def running_bridge(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Bridge]:
    """A server with the fake AS registered (as `relay`), both up."""
    async with fake_appservice() as fake:
        path = _registration(tmp_path_factory.mktemp("regs"), fake.url, fake.hs_token)
        overrides = {"appservices.registration_files": (path,), **FAST_RETRY}
        async with running_server(tmp_path_factory.mktemp("as-txn"), overrides) as srv:
            yield Bridge(srv, fake, yaml.safe_load(path.read_text())["as_token"])


@pytest.fixture(scope="module")
async def bridge(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Bridge]:
    async with running_bridge(tmp_path_factory) as bridge:
        yield bridge


def restartable_bridge(tmp_path: Path) -> tuple[int, str, str, dict[str, Any]]:
    """For a server restarted on `tmp_path` while the fake AS comes and goes on a fixed port:
    (port, hs_token, as_token, server overrides)."""
    port, hs_token = _free_port(), "restart-hs-token"
    path = _registration(tmp_path, f"http://127.0.0.1:{port}", hs_token)
    as_token = yaml.safe_load(path.read_text())["as_token"]
    return port, hs_token, as_token, {"appservices.registration_files": (path,), **FAST_RETRY}


async def _shared_room(bridge: Bridge, user: User, localpart: str) -> tuple[str, str]:
    ghost = await bridge.ghost(localpart)
    room = await user.create_room(preset="public_chat")
    assert (await bridge.call("POST", f"/rooms/{room}/join", {}, user_id=ghost)).status_code == 200
    return room, ghost


async def _bodies_until(fake: FakeAppservice, room: str, last: str, timeout: float = 15.0) -> list[str]:
    """Message bodies of `room` the AS received, in order, up to the one saying `last`."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        bodies = [
            e["content"].get("body") for e in fake.events()
            if e["room_id"] == room and e["type"] == "m.room.message"
        ]
        if last in bodies:
            return bodies
        assert asyncio.get_running_loop().time() < deadline, f"AS got only {bodies}"
        await asyncio.sleep(0.05)


async def test_events_of_rooms_with_namespace_users_are_pushed_in_order(bridge: Bridge) -> None:
    user = await new_user(bridge.srv, "txn")
    room, ghost = await _shared_room(bridge, user, "relay_one")
    for i in range(5):
        await user.send(room, f"m{i}")
    assert await _bodies_until(bridge.fake, room, "m4") == [f"m{i}" for i in range(5)]
    txns = bridge.fake.transactions
    assert all(t.authorization == f"Bearer {bridge.fake.hs_token}" for t in txns)
    assert all(t.content_type == "application/json" for t in txns)  # SyTest's AS insists
    ids = [int(t.txn_id) for t in txns]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    joins = [e for e in bridge.fake.events() if e["type"] == "m.room.member" and e["state_key"] == ghost]
    assert joins and joins[0]["content"]["membership"] == "join"
    # Events are in the client format, with age.
    message = next(e for e in bridge.fake.events() if e.get("content", {}).get("body") == "m0")
    assert message["sender"] == user.user_id and "age" in message["unsigned"]


async def test_a_direct_chat_created_with_a_ghost_reaches_the_bridge(bridge: Bridge) -> None:
    """Element starts a chat with a bridged contact by POST /createRoom {invite: [ghost],
    is_direct}: the bridge must get that invite to join and relay."""
    user = await new_user(bridge.srv, "dm")
    ghost = await bridge.ghost("relay_dm")
    resp = await bridge.srv.client.post(
        f"{V3}/createRoom", json={"preset": "trusted_private_chat", "is_direct": True, "invite": [ghost]},
        headers=auth_header(user.token),
    )
    assert resp.status_code == 200, resp.text
    room = resp.json()["room_id"]
    deadline = asyncio.get_running_loop().time() + 15
    while not [e for e in bridge.fake.events() if e["room_id"] == room and e.get("state_key") == ghost]:
        assert asyncio.get_running_loop().time() < deadline, "the bridge never got the invite"
        await asyncio.sleep(0.05)
    invite = next(e for e in bridge.fake.events() if e["room_id"] == room and e.get("state_key") == ghost)
    assert invite["content"]["membership"] == "invite" and invite["content"]["is_direct"] is True
    assert invite["sender"] == user.user_id


async def test_one_transaction_in_flight_for_a_slow_as(bridge: Bridge) -> None:
    user = await new_user(bridge.srv, "slow")
    room, _ = await _shared_room(bridge, user, "relay_slow")
    bridge.fake.delay_s = 0.6
    bridge.fake.max_in_flight = 0
    try:
        for i in range(6):
            await user.send(room, f"slow{i}")
        bodies = await _bodies_until(bridge.fake, room, "slow5")
    finally:
        bridge.fake.delay_s = 0.0
    assert bodies == [f"slow{i}" for i in range(6)]
    assert bridge.fake.max_in_flight == 1
    # Messages sent while one transaction was in flight were batched into later ones.
    carrying = [t for t in bridge.fake.transactions
                if any(e.get("content", {}).get("body", "").startswith("slow") for e in t.body["events"])]
    assert len(carrying) < 6


async def test_rooms_without_the_as_are_not_pushed(bridge: Bridge) -> None:
    user = await new_user(bridge.srv, "private")
    lonely = await user.create_room()
    await user.send(lonely, "not for the bridge")
    room, _ = await _shared_room(bridge, user, "relay_two")
    await user.send(room, "sentinel")
    await _bodies_until(bridge.fake, room, "sentinel")
    assert not [e for e in bridge.fake.events() if e.get("room_id") == lonely]


async def test_rooms_with_an_alias_in_the_namespace_are_pushed(bridge: Bridge) -> None:
    user = await new_user(bridge.srv, "aliased")
    room = await user.create_room()
    alias = f"#relay_aliased:{SERVER_NAME}"
    assert (await bridge.call("PUT", f"/directory/room/{quote(alias)}", {"room_id": room})).status_code == 200
    await user.send(room, "via alias")
    assert await _bodies_until(bridge.fake, room, "via alias") == ["via alias"]


async def test_an_outage_is_retried_with_the_same_txn_in_order(bridge: Bridge) -> None:
    user = await new_user(bridge.srv, "outage")
    room, _ = await _shared_room(bridge, user, "relay_three")
    await user.send(room, "before")
    await _bodies_until(bridge.fake, room, "before")
    bridge.fake.fail_with = 503
    try:
        for i in range(3):
            await user.send(room, f"during{i}")
        await asyncio.sleep(1.0)  # several failed attempts (retry_initial_s = 0.2)
    finally:
        bridge.fake.fail_with = None
    bodies = await _bodies_until(bridge.fake, room, "during2")
    assert bodies == ["before", "during0", "during1", "during2"]


async def _ephemeral(fake: FakeAppservice, edu_type: str, room: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        for txn in fake.transactions:
            for edu in txn.body.get("ephemeral", []):
                if edu["type"] == edu_type and edu.get("room_id") == room:
                    # The unstable name bridges older than the spec read carries the same.
                    assert edu in txn.body["de.sorunome.msc2409.ephemeral"]
                    return dict(edu)
        assert asyncio.get_running_loop().time() < deadline, f"no {edu_type} for {room}"
        await asyncio.sleep(0.05)


async def test_typing_and_receipts_reach_an_as_that_asks(bridge: Bridge) -> None:
    """MSC2409: typing, receipts and presence of rooms and users the AS's users share."""
    user = await new_user(bridge.srv, "ephemeral")
    room, _ = await _shared_room(bridge, user, "relay_eph")
    await user.call("PUT", f"/rooms/{room}/typing/{user.user_id}", {"typing": True, "timeout": 10000})
    typing = await _ephemeral(bridge.fake, "m.typing", room)
    assert typing["content"] == {"user_ids": [user.user_id]}
    event_id = await user.send(room, "read me")
    await user.call("POST", f"/rooms/{room}/receipt/m.read/{quote(event_id)}", {})
    receipt = await _ephemeral(bridge.fake, "m.receipt", room)
    assert list(receipt["content"]) == [event_id]
    assert user.user_id in receipt["content"][event_id]["m.read"]
    await user.call("PUT", f"/presence/{user.user_id}/status", {"presence": "online", "status_msg": "bridging"})
    deadline = asyncio.get_running_loop().time() + 10
    while not [e for t in bridge.fake.transactions for e in t.body.get("ephemeral", [])
               if e["type"] == "m.presence" and e["sender"] == user.user_id
               and e["content"].get("status_msg") == "bridging"]:
        assert asyncio.get_running_loop().time() < deadline, "no m.presence for the bridge"
        await asyncio.sleep(0.05)
    # A room without the AS's users: nothing.
    lonely = await user.create_room()
    await user.call("PUT", f"/rooms/{lonely}/typing/{user.user_id}", {"typing": True, "timeout": 10000})
    await _bodies_until(bridge.fake, room, "read me")
    await user.send(room, "sentinel 2")
    await _bodies_until(bridge.fake, room, "sentinel 2")
    assert not [e for t in bridge.fake.transactions for e in t.body.get("ephemeral", []) if e.get("room_id") == lonely]


async def test_to_device_and_key_counts_for_encrypted_bridging(bridge: Bridge) -> None:
    """MSC2409 to-device messages for the AS's users' devices, with MSC3202's one-time key
    counts of those devices."""
    ghost = await bridge.ghost("relay_crypto")
    assert (await bridge.call("PUT", "/devices/CRYPTODEV", {}, user_id=ghost)).status_code == 201
    keys = {"one_time_keys": {f"signed_curve25519:K{i}": {"key": f"k{i}"} for i in range(3)},
            "fallback_keys": {"signed_curve25519:F": {"key": "f", "fallback": True}}}
    upload = await bridge.call("POST", "/keys/upload", keys, user_id=ghost, device_id="CRYPTODEV")
    assert upload.status_code == 200, upload.text
    user = await new_user(bridge.srv, "sender")
    body = {"messages": {ghost: {"CRYPTODEV": {"algorithm": "m.olm.v1", "ciphertext": "x"}}}}
    await user.call("PUT", "/sendToDevice/m.room.encrypted/td1", body)
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        found = [(t, m) for t in bridge.fake.transactions
                 for m in t.body.get("de.sorunome.msc2409.to_device", []) if m["to_user_id"] == ghost]
        if found:
            break
        assert asyncio.get_running_loop().time() < deadline, "no to-device for the bridge"
        await asyncio.sleep(0.05)
    txn, message = found[0]
    assert message == {"type": "m.room.encrypted", "sender": user.user_id, "to_user_id": ghost,
                       "to_device_id": "CRYPTODEV", "content": {"algorithm": "m.olm.v1", "ciphertext": "x"}}
    counts = txn.body["org.matrix.msc3202.device_one_time_keys_count"]
    # MSC3202 device lists: a user sharing a room with the AS's users gets a new device.
    room = await user.create_room(preset="public_chat")
    assert (await bridge.call("POST", f"/rooms/{room}/join", {}, user_id=ghost)).status_code == 200
    await login(bridge.srv.client, user.user_id.split(":")[0][1:])
    deadline = asyncio.get_running_loop().time() + 10
    while not any(user.user_id in t.body.get("org.matrix.msc3202.device_lists", {}).get("changed", [])
                  for t in bridge.fake.transactions):
        assert asyncio.get_running_loop().time() < deadline, "no device list change for the bridge"
        await asyncio.sleep(0.05)
    assert counts[ghost]["CRYPTODEV"] == {"signed_curve25519": 3}
    assert txn.body["org.matrix.msc3202.device_unused_fallback_key_types"][ghost]["CRYPTODEV"] == ["signed_curve25519"]


async def test_queries_create_users_and_aliases_on_demand(bridge: Bridge) -> None:
    user = await new_user(bridge.srv, "asker")
    room = await user.create_room(preset="public_chat")
    wanted = f"@relay_puppet:{SERVER_NAME}"

    async def create_user(request: web.Request) -> web.Response:
        await bridge.ghost("relay_puppet")
        return web.json_response({})

    bridge.fake.handlers[f"/_matrix/app/v1/users/{wanted}"] = create_user
    await user.call("POST", f"/rooms/{room}/invite", {"user_id": wanted})
    assert ("GET", f"/_matrix/app/v1/users/{wanted}") in bridge.fake.requests
    # Unknown to the AS: the invite fails as for any unknown user.
    missing = await user.call("POST", f"/rooms/{room}/invite", {"user_id": f"@relay_none:{SERVER_NAME}"}, expect=None)
    assert missing.status_code == 404

    alias = f"#relay_portal:{SERVER_NAME}"

    async def create_alias(request: web.Request) -> web.Response:
        made = await bridge.call("PUT", f"/directory/room/{quote(alias)}", {"room_id": room})
        assert made.status_code == 200, made.text
        return web.json_response({})

    bridge.fake.handlers[f"/_matrix/app/v1/rooms/{alias}"] = create_alias
    joiner = await new_user(bridge.srv, "joiner")
    joined = await joiner.call("POST", f"/join/{quote(alias)}", {})
    assert joined.json()["room_id"] == room
    unknown = await joiner.call("GET", f"/directory/room/%23relay_nothing:{SERVER_NAME}", expect=None)
    assert unknown.status_code == 404


async def test_ping(bridge: Bridge) -> None:
    seen: list[Any] = []

    async def pong(request: web.Request) -> web.Response:
        seen.append(await request.json())
        return web.json_response({})

    bridge.fake.handlers["/_matrix/app/v1/ping"] = pong
    resp = await bridge.call("POST", f"/_matrix/client/v1/appservice/{AS}/ping", {"transaction_id": "p1"})
    assert resp.status_code == 200, resp.text
    assert isinstance(resp.json()["duration_ms"], int)
    assert seen == [{"transaction_id": "p1"}]
    user = await new_user(bridge.srv, "pinger")
    refused = await user.call("POST", f"/_matrix/client/v1/appservice/{AS}/ping", {}, expect=None)
    assert (refused.status_code, refused.json()["errcode"]) == (403, "M_FORBIDDEN")

    async def broken(request: web.Request) -> web.Response:
        return web.json_response({"errcode": "M_UNKNOWN"}, status=500)

    bridge.fake.handlers["/_matrix/app/v1/ping"] = broken
    bad = await bridge.call("POST", f"/_matrix/client/v1/appservice/{AS}/ping", {})
    assert (bad.status_code, bad.json()["errcode"], bad.json()["status_code"]) == (502, "M_BAD_STATUS", 500)


async def test_thirdparty_lookups_are_proxied(bridge: Bridge) -> None:
    async def protocol(request: web.Request) -> web.Response:
        return web.json_response({"user_fields": ["nick"], "location_fields": ["channel"], "icon": "mxc://x/y",
                                  "field_types": {}, "instances": [{"desc": "one", "network_id": "n1"}]})

    async def users(request: web.Request) -> web.Response:
        return web.json_response([{"userid": f"@relay_{request.query['nick']}:{SERVER_NAME}",
                                   "protocol": "ymca", "fields": dict(request.query)}])

    bridge.fake.handlers["/_matrix/app/v1/thirdparty/protocol/ymca"] = protocol
    bridge.fake.handlers["/_matrix/app/v1/thirdparty/user/ymca"] = users
    user = await new_user(bridge.srv, "thirdparty")
    protocols = (await user.call("GET", "/thirdparty/protocols")).json()
    assert protocols["ymca"]["user_fields"] == ["nick"]
    assert protocols["ymca"]["instances"][0]["instance_id"] == f"{AS}|n1"
    assert (await user.call("GET", "/thirdparty/protocol/ymca")).json()["icon"] == "mxc://x/y"
    assert (await user.call("GET", "/thirdparty/protocol/nope", expect=None)).status_code == 404
    found = (await user.call("GET", "/thirdparty/user/ymca?nick=bob")).json()
    assert found == [{"userid": f"@relay_bob:{SERVER_NAME}", "protocol": "ymca", "fields": {"nick": "bob"}}]
    assert (await user.call("GET", "/thirdparty/location/ymca?channel=x")).json() == []


async def test_a_restart_and_an_outage_lose_nothing(tmp_path: Path) -> None:
    """The AS is down while messages are sent and the server restarts: when it comes back
    every message arrives once, in order."""
    port, hs_token, as_token, overrides = restartable_bridge(tmp_path)
    data = tmp_path / "data"
    async with fake_appservice(port, hs_token) as fake, running_server(data, overrides) as srv:
        bridge = Bridge(srv, fake, as_token)
        user = await new_user(srv, "restart")
        room, _ = await _shared_room(bridge, user, "relay_restart")
        await user.send(room, "up")
        await _bodies_until(fake, room, "up")
        user_token = user.token
    # The AS is gone (nothing listens on its port); the server keeps taking messages.
    async with running_server(data, overrides) as srv:
        user = User(srv.client, user.user_id, user_token, user.device_id)
        for i in range(4):
            await user.send(room, f"down{i}")
        await asyncio.sleep(0.5)
    async with fake_appservice(port, hs_token) as fake2, running_server(data, overrides) as srv:
        bodies = await _bodies_until(fake2, room, "down3")
        assert bodies == [f"down{i}" for i in range(4)]
        await asyncio.sleep(0.5)  # nothing more comes
        assert [e["content"]["body"] for e in fake2.events() if e["type"] == "m.room.message"] == bodies


async def test_a_ping_ends_the_backoff(tmp_path: Path) -> None:
    """A bridge that comes back pings us: what waits for it is sent at once, not after the
    backoff (here a minute)."""
    async with fake_appservice() as fake:
        path = _registration(tmp_path, fake.url, fake.hs_token)
        overrides = {"appservices.registration_files": (path,), "appservices.retry_initial_s": 60.0}
        async with running_server(tmp_path / "data", overrides) as srv:
            bridge = Bridge(srv, fake, yaml.safe_load(path.read_text())["as_token"])
            fake.fail_with = 503
            user = await new_user(srv, "pingback")
            room, _ = await _shared_room(bridge, user, "relay_ping")
            await user.send(room, "waiting")
            status = srv.app().extensions["dendrite_lite"].appservice_sender
            for _ in range(100):
                if (await status.statuses())[0].retry_interval_ms:
                    break
                await asyncio.sleep(0.05)
            fake.fail_with = None

            async def pong(request: web.Request) -> web.Response:
                return web.json_response({})

            fake.handlers["/_matrix/app/v1/ping"] = pong
            assert (await bridge.call("POST", f"/_matrix/client/v1/appservice/{AS}/ping", {})).status_code == 200
            assert await _bodies_until(fake, room, "waiting", timeout=5.0) == ["waiting"]
