"""Pushers (push.md §Pushers): GET /pushers, POST /pushers/set and its errors, and delivery to
an HTTP push gateway (a fake one on loopback): full and event_id_only formats, rejected
pushkeys removing the pusher, retries after a 5xx."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import shutil
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dendrite_lite.storage import pushers as pushers_table
from tests.integration.account_helpers import (
    PASSWORD,
    fast_hashing_for_tests,
    login,
    running_server,
)
from tests.conftest import RunningServer
from tests.integration.federation_helpers import services_of
from tests.interop.synapse_server import free_port
from tests.integration.push_gateway_fake import FakeGateway, fake_gateway
from tests.integration.sync_helpers import User, create_room, join, new_user, send
from tests.integration.test_server_lifecycle import _self_signed
from tests.spec_schema import assert_matches_operation

_n = itertools.count(1)


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path_factory.mktemp("pushers")) as s:
        yield s


@pytest.fixture
def client(srv: RunningServer) -> httpx.AsyncClient:
    return srv.client


@pytest.fixture
async def gateway() -> AsyncIterator[FakeGateway]:
    async with fake_gateway() as gw:
        yield gw


async def _user(client: httpx.AsyncClient, name: str) -> User:
    return await new_user(client, f"push{next(_n)}{name}")


def _pusher(url: str, **extra: Any) -> dict[str, Any]:
    body = {
        "kind": "http", "app_id": "org.example.app", "pushkey": "key-1",
        "app_display_name": "Example", "device_display_name": "Phone", "lang": "en",
        "data": {"url": url, "custom": 1},
    }
    body.update(extra)
    return body


async def _set(user: User, body: dict[str, Any]) -> httpx.Response:
    return await user.post("/pushers/set", body)


async def _pushers(user: User) -> list[dict[str, Any]]:
    resp = await user.get("/pushers")
    assert resp.status_code == 200, resp.text
    return list(resp.json()["pushers"])


async def test_set_list_update_delete(client: httpx.AsyncClient) -> None:
    alice = await _user(client, "alice")
    assert await _pushers(alice) == []
    url = "https://push.example.org/_matrix/push/v1/notify"
    assert (await _set(alice, _pusher(url, profile_tag="tag"))).json() == {}
    listed = (await alice.get("/pushers")).json()
    assert_matches_operation("client-server/pusher.yaml", "/pushers", "get", 200, listed)
    assert await _pushers(alice) == [{
        "pushkey": "key-1", "kind": "http", "app_id": "org.example.app",
        "app_display_name": "Example", "device_display_name": "Phone", "profile_tag": "tag",
        "lang": "en", "data": {"url": url, "custom": 1},
    }]
    await _set(alice, _pusher(url, device_display_name="Tablet", pushkey="key-0"))
    await _set(alice, _pusher(url, lang="fr"))
    listed = await _pushers(alice)
    assert [(p["pushkey"], p["device_display_name"], p["lang"]) for p in listed] == [
        ("key-0", "Tablet", "en"), ("key-1", "Phone", "fr")
    ]
    assert "profile_tag" not in listed[1]
    resp = await _set(alice, {"kind": None, "app_id": "org.example.app", "pushkey": "key-0"})
    assert resp.status_code == 200, resp.text
    assert [p["pushkey"] for p in await _pushers(alice)] == ["key-1"]


async def test_append_false_takes_the_pushkey_from_other_users(client: httpx.AsyncClient) -> None:
    alice, bob, carol = [await _user(client, n) for n in ("alice", "bob", "carol")]
    url = "https://push.example.org/_matrix/push/v1/notify"
    await _set(alice, _pusher(url))
    await _set(bob, _pusher(url, append=True))
    assert len(await _pushers(alice)) == 1 and len(await _pushers(bob)) == 1
    await _set(carol, _pusher(url))
    assert await _pushers(alice) == [] and await _pushers(bob) == []
    assert len(await _pushers(carol)) == 1


@pytest.mark.parametrize(
    ("change", "errcode"),
    [
        ({"kind": "email"}, "M_INVALID_PARAM"),
        ({"data": {"url": "https://push.example.org/other"}}, "M_INVALID_PARAM"),
        ({"data": {"url": "ftp://push.example.org/_matrix/push/v1/notify"}}, "M_INVALID_PARAM"),
        ({"data": {"format": "event_id_only"}}, "M_MISSING_PARAM"),
        ({"data": "x"}, "M_INVALID_PARAM"),
        ({"pushkey": "k" * 513}, "M_INVALID_PARAM"),
        ({"app_id": "a" * 65}, "M_INVALID_PARAM"),
        ({"lang": 5}, "M_INVALID_PARAM"),
        ({"append": "yes"}, "M_INVALID_PARAM"),
        ({"pushkey": None}, "M_MISSING_PARAM"),
    ],
)
async def test_set_errors(client: httpx.AsyncClient, change: dict[str, Any], errcode: str) -> None:
    alice = await _user(client, "alice")
    resp = await _set(alice, _pusher("https://p.example.org/_matrix/push/v1/notify", **change))
    assert resp.status_code == 400, resp.text
    assert resp.json()["errcode"] == errcode
    assert await _pushers(alice) == []


async def test_set_errors_missing_fields(client: httpx.AsyncClient) -> None:
    alice = await _user(client, "alice")
    for key in ("kind", "app_display_name", "device_display_name", "lang", "data"):
        body = _pusher("https://p.example.org/_matrix/push/v1/notify")
        del body[key]
        resp = await _set(alice, body)
        assert resp.status_code == 400 and resp.json()["errcode"] == "M_MISSING_PARAM", key
    resp = await client.get("/_matrix/client/v3/pushers")
    assert resp.status_code == 401 and resp.json()["errcode"] == "M_MISSING_TOKEN"


async def _room_with_pusher(
    client: httpx.AsyncClient, gateway: FakeGateway, **pusher: Any
) -> tuple[User, User, str]:
    alice, bob = await _user(client, "alice"), await _user(client, "bob")
    room = await create_room(alice, name="Pushy")
    resp = await alice.post(f"/rooms/{room}/invite", {"user_id": bob.user_id})
    assert resp.status_code == 200, resp.text
    resp = await bob.put(f"/profile/{bob.user_id}/displayname", {"displayname": "Bob B"})
    assert resp.status_code == 200, resp.text
    await join(bob, room)
    resp = await _set(alice, _pusher(gateway.url, **pusher))
    assert resp.status_code == 200, resp.text
    return alice, bob, room


async def test_delivery_full_format(client: httpx.AsyncClient, gateway: FakeGateway) -> None:
    alice, bob, room = await _room_with_pusher(client, gateway)
    event_id = await send(bob, room, "hello alice")
    body = await gateway.next()
    assert body == {"notification": {
        "id": event_id,  # the first gateway API's name, as Synapse sends it
        "event_id": event_id, "room_id": room, "type": "m.room.message", "sender": bob.user_id,
        "sender_display_name": "Bob B", "room_name": "Pushy",
        "content": {"msgtype": "m.text", "body": "hello alice"},
        "counts": {"unread": 1}, "prio": "high",
        "devices": [{
            "app_id": "org.example.app", "pushkey": "key-1",
            "pushkey_ts": body["notification"]["devices"][0]["pushkey_ts"],
            "data": {"custom": 1}, "tweaks": {"sound": "default"},
        }],
    }}
    # The same actions in GET /notifications.
    listed = (await alice.get("/notifications")).json()["notifications"]
    assert [(n["event"]["event_id"], n["actions"]) for n in listed] == [
        (event_id, ["notify", {"set_tweak": "sound", "value": "default"}])
    ]
    await send(bob, room, "again")
    second = (await gateway.next())["notification"]
    assert second["counts"] == {"unread": 2}
    assert gateway.received.empty()
    # Reading sends the new badge alone, with no event.
    resp = await alice.post(f"/rooms/{room}/receipt/m.read/{second['event_id']}", {})
    assert resp.status_code == 200, resp.text
    badge = (await gateway.next())["notification"]
    assert badge == {"id": "", "type": None, "sender": "", "counts": {"unread": 0}, "devices": [{
        "app_id": "org.example.app", "pushkey": "key-1", "pushkey_ts": badge["devices"][0]["pushkey_ts"],
        "data": {"custom": 1}, "tweaks": {},
    }]}


async def test_unnamed_room_is_named_by_its_alias(client: httpx.AsyncClient, gateway: FakeGateway) -> None:
    alice, bob = await _user(client, "alice"), await _user(client, "bob")
    room = await create_room(bob, preset="public_chat", room_alias_name=f"pushy{next(_n)}")
    await join(alice, room)
    assert (await _set(alice, _pusher(gateway.url))).status_code == 200
    await send(bob, room, "hi")
    note = (await gateway.next())["notification"]
    assert note["room_alias"].startswith("#pushy") and note["room_name"] == note["room_alias"]


async def test_delivery_event_id_only(client: httpx.AsyncClient, gateway: FakeGateway) -> None:
    _, bob, room = await _room_with_pusher(
        client, gateway, data={"url": gateway.url, "format": "event_id_only"}
    )
    event_id = await send(bob, room, "secret")
    note = (await gateway.next())["notification"]
    assert note == {
        "event_id": event_id, "room_id": room, "counts": {"unread": 1}, "prio": "high",
        "devices": [{
            "app_id": "org.example.app", "pushkey": "key-1",
            "pushkey_ts": note["devices"][0]["pushkey_ts"],
            "data": {"format": "event_id_only"}, "tweaks": {"sound": "default"},
        }],
    }


async def test_rejected_pushkey_removes_pusher(client: httpx.AsyncClient, gateway: FakeGateway) -> None:
    alice, bob, room = await _room_with_pusher(client, gateway)
    gateway.reject.add("key-1")
    await send(bob, room, "one")
    await gateway.next()
    # The pusher is gone: the next message goes nowhere.
    for _ in range(50):
        if not await _pushers(alice):
            break
        await _sleep()
    assert await _pushers(alice) == []
    await send(bob, room, "two")
    await _sleep(0.5)
    assert gateway.received.empty()


async def test_gateway_5xx_is_retried(client: httpx.AsyncClient, gateway: FakeGateway) -> None:
    _, bob, room = await _room_with_pusher(client, gateway)
    gateway.fail_next = 1
    event_id = await send(bob, room, "retry me")
    assert (await gateway.next())["notification"]["event_id"] == event_id


async def test_own_and_non_notifying_events_not_pushed(
    client: httpx.AsyncClient, gateway: FakeGateway
) -> None:
    alice, bob, room = await _room_with_pusher(client, gateway)
    await send(alice, room, "my own")
    resp = await bob.put(f"/rooms/{room}/send/m.reaction/r1", {})  # no rule notifies for it
    assert resp.status_code == 200, resp.text
    event_id = await send(bob, room, "this one")
    assert (await gateway.next())["notification"]["event_id"] == event_id


async def test_muted_room_still_pushes_a_mention_by_user_id(
    client: httpx.AsyncClient, gateway: FakeGateway
) -> None:
    # SyTest 61push "Don't get pushed for rooms you've muted": the legacy content rule
    # .m.rule.contains_user_name outranks the room rule, so a body naming the user still pushes.
    alice, bob, room = await _room_with_pusher(client, gateway)
    resp = await alice.put(f"/pushrules/global/room/{room}", {"actions": ["dont_notify"]})
    assert resp.status_code == 200, resp.text
    await send(bob, room, "not for you")
    mention = await send(bob, room, f"Second message - {alice.user_id}")
    note = (await gateway.next())["notification"]
    assert note["event_id"] == mention
    assert note["devices"][0]["tweaks"] == {"sound": "default", "highlight": True}
    # With m.mentions the legacy rule is off (mentions.md): the room rule mutes it.
    resp = await bob.put(f"/rooms/{room}/send/m.room.message/m1", {
        "msgtype": "m.text", "body": f"again {alice.user_id}", "m.mentions": {},
    })
    assert resp.status_code == 200, resp.text
    await _sleep(0.3)
    assert gateway.received.empty()


async def _sleep(s: float = 0.05) -> None:
    await asyncio.sleep(s)


async def test_deactivation_removes_pushers(srv: RunningServer, gateway: FakeGateway) -> None:
    alice, _, _ = await _room_with_pusher(srv.client, gateway)
    resp = await alice.post("/account/deactivate", {})
    assert resp.status_code == 401, resp.text
    auth = {"type": "m.login.password", "session": resp.json()["session"], "password": PASSWORD,
            "identifier": {"type": "m.id.user", "user": alice.user_id}}
    with fast_hashing_for_tests():
        resp = await alice.post("/account/deactivate", {"auth": auth})
    assert resp.status_code == 200, resp.text
    svc = services_of(srv)
    left = await svc.storage.db.read(lambda conn: pushers_table.select_pushers(conn, alice.user_id))
    assert left == []


async def test_queued_notification_survives_restart(tmp_path: Path) -> None:
    """The gateway is down when the message arrives; the server stops while retrying; after a
    restart, with the gateway back, the notification is delivered."""
    port = free_port()
    data = tmp_path / "data"
    async with running_server(data) as srv:
        alice, bob = await new_user(srv.client, "alice"), await new_user(srv.client, "bob")
        room = await create_room(alice, preset="public_chat")
        await join(bob, room)
        url = f"http://127.0.0.1:{port}/_matrix/push/v1/notify"
        assert (await _set(alice, _pusher(url))).status_code == 200
        event_id = await send(bob, room, "while down")
        await _sleep(0.3)  # the first attempt fails; the retry waits
        key_file = srv.config.signing_key_path
    key_file.unlink()  # the test launcher writes a fresh key each start; the database stays
    async with fake_gateway(port) as gateway:
        async with running_server(data):
            note = (await gateway.next())["notification"]
            assert note["event_id"] == event_id and note["content"]["body"] == "while down"


async def _three_in_a_room(client: httpx.AsyncClient) -> tuple[User, User, User, str]:
    """alice, bob and carol (queued for pushes in that order: members are read in user ID
    order) in alice's public room."""
    n = next(_n)
    alice, bob, carol = [
        await new_user(client, f"push{n}{x}") for x in ("a-alice", "b-bob", "c-carol")
    ]
    room = await create_room(alice, preset="public_chat")
    await join(bob, room)
    await join(carol, room)
    return alice, bob, carol, room


async def test_dead_gateway_does_not_hold_up_other_users(
    client: httpx.AsyncClient, gateway: FakeGateway
) -> None:
    """alice's gateway is down (retried for seconds); carol's push of the same message comes
    at once. alice's notification is queued first (members are read in user ID order), so
    delivering one after the other would keep carol waiting."""
    alice, bob, carol, room = await _three_in_a_room(client)
    dead = f"http://127.0.0.1:{free_port()}/_matrix/push/v1/notify"
    assert (await _set(alice, _pusher(dead))).status_code == 200
    assert (await _set(carol, _pusher(gateway.url, pushkey="key-c"))).status_code == 200
    loop = asyncio.get_running_loop()
    start = loop.time()
    event_id = await send(bob, room, "to both")
    note = (await gateway.next(timeout=2.5))["notification"]
    assert note["event_id"] == event_id and note["devices"][0]["pushkey"] == "key-c"
    assert loop.time() - start < 2.5  # alice's retries alone take 3 s


async def test_silent_gateway_does_not_hold_up_later_pushes(
    client: httpx.AsyncClient, gateway: FakeGateway
) -> None:
    """alice's gateway accepts connections and never answers (each attempt waits for the
    timeout); carol's pushes of this message and of the next ones still come at once."""
    alice, bob, carol, room = await _three_in_a_room(client)
    held: list[asyncio.StreamWriter] = []

    async def never_answer(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    silent = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    try:
        assert (await _set(alice, _pusher(f"http://127.0.0.1:{port}/_matrix/push/v1/notify"))).status_code == 200
        assert (await _set(carol, _pusher(gateway.url, pushkey="key-c"))).status_code == 200
        for text in ("one", "two", "three"):
            event_id = await send(bob, room, text)
            note = (await gateway.next(timeout=2.5))["notification"]
            assert note["event_id"] == event_id and note["devices"][0]["pushkey"] == "key-c"
    finally:
        for writer in held:
            writer.close()
        silent.close()


async def test_deleting_the_device_deletes_its_pushers(client: httpx.AsyncClient) -> None:
    """Logging out (which deletes the device) removes the pushers that device set, and only
    those: another device's pusher stays."""
    alice = await _user(client, "alice")
    with fast_hashing_for_tests():
        resp = await login(client, alice.user_id)
    assert resp.status_code == 200, resp.text
    phone = dataclasses.replace(alice, token=resp.json()["access_token"])
    url = "https://push.example.org/_matrix/push/v1/notify"
    assert (await _set(alice, _pusher(url, pushkey="laptop"))).status_code == 200
    assert (await _set(phone, _pusher(url, pushkey="phone"))).status_code == 200
    assert [p["pushkey"] for p in await _pushers(alice)] == ["laptop", "phone"]
    assert (await phone.post("/logout", {})).status_code == 200
    assert [p["pushkey"] for p in await _pushers(alice)] == ["laptop"]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")
async def test_https_gateway_with_a_private_ca(tmp_path: Path) -> None:
    """push.ca_file: a gateway whose certificate only that CA vouches for (a self-hosted Sygnal,
    SyTest's gateway) gets its notifications."""
    cert, key = _self_signed(tmp_path / "tls")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    async with fake_gateway(ssl_context=context) as gateway, running_server(
        tmp_path / "data", {"push.ca_file": cert}
    ) as srv:
        alice, bob = await new_user(srv.client, "alice"), await new_user(srv.client, "bob")
        room = await create_room(alice, preset="public_chat")
        await join(bob, room)
        assert gateway.url.startswith("https://")
        assert (await _set(alice, _pusher(gateway.url))).status_code == 200
        event_id = await send(bob, room, "over tls")
        assert (await gateway.next(5))["notification"]["event_id"] == event_id
