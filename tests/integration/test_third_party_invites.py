"""Invites by email address through real servers and the test identity server
(tests/integration/identity_server.py): client-server §Third-party invites, server-server §Third-party
invites, identity-service §Invitation storage.

One server: a bound address becomes an ordinary invite; an unbound one an
m.room.third_party_invite carrying the identity server's keys, which the identity server's
/3pid/onbind turns into the member invite once the address is bound; /join with
third_party_signed; signatures that do not verify or keys the identity server no longer vouches
for give no invite. Two servers over TLS: the invitee's server is not in the room (it asks
the inviter's with /exchange_third_party_invite) or is (it sends the invite itself)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import RunningServer, StartServer
from tests.integration.identity_server import TOKEN, FakeIdentityServer, identity_overrides
from tests.integration.account_helpers import running_server
from tests.integration.federation_helpers import RemoteServer
from tests.integration.room_helpers import User, new_user
from tests.integration.test_federation_forwarding import eventually, membership
from tests.integration.test_federation_membership import OPEN, _client
from tests.interop.synapse_server import tls_overrides
from tests.spec_schema import assert_matches_schema

TPI = "m.room.third_party_invite"
_addresses = itertools.count(1)


def _address() -> str:
    return f"invitee{next(_addresses)}@Example.org"


@pytest.fixture(scope="module")
async def srv(
    tmp_path_factory: pytest.TempPathFactory, identity_server: FakeIdentityServer
) -> AsyncIterator[RunningServer]:
    async with running_server(
        tmp_path_factory.mktemp("tpi"), identity_overrides(identity_server)
    ) as s:
        yield s


@pytest.fixture
def ids(srv: RunningServer, identity_server: FakeIdentityServer) -> FakeIdentityServer:
    """The identity server, pointing this server's name at this module's server (other test
    modules use the same name for theirs)."""
    identity_server.homeservers[srv.config.server.server_name] = srv.listening.federation_url or ""
    return identity_server


def _invite_body(ids: FakeIdentityServer, address: str) -> dict[str, str]:
    return {"id_server": ids.name, "id_access_token": TOKEN, "medium": "email", "address": address}


async def _bind(ids: FakeIdentityServer, user: User, address: str) -> None:
    """The invitee proves the address at the identity server and binds it to their id."""
    sid = ids.validate("email", address.lower(), "secret")
    async with httpx.AsyncClient(verify=False) as client:
        resp = await client.post(
            f"https://{ids.name}/_matrix/identity/v2/3pid/bind",
            json={"sid": sid, "client_secret": "secret", "mxid": user.user_id},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
    assert resp.status_code == 200, resp.text


async def _tpi_events(user: User, room_id: str) -> list[dict[str, Any]]:
    state = (await user.call("GET", f"/rooms/{room_id}/state")).json()
    return [e for e in state if e["type"] == TPI]


async def test_a_bound_address_gets_an_ordinary_invite(srv: RunningServer, ids: FakeIdentityServer) -> None:
    alice, bob = await new_user(srv, "alice"), await new_user(srv, "bob")
    address = _address()
    ids.bind_out_of_band("email", address.lower(), bob.user_id)
    room_id = await alice.create_room(preset="private_chat")
    await alice.call("POST", f"/rooms/{room_id}/invite", _invite_body(ids, address))
    member = (await alice.state(room_id, "m.room.member", bob.user_id)).json()
    assert member["membership"] == "invite"
    assert "third_party_invite" not in member
    assert await _tpi_events(alice, room_id) == []


async def test_create_room_invites_a_bound_address(srv: RunningServer, ids: FakeIdentityServer) -> None:
    alice, bob = await new_user(srv, "alice"), await new_user(srv, "bob")
    address = _address()
    ids.bind_out_of_band("email", address.lower(), bob.user_id)
    room_id = await alice.create_room(invite_3pid=[_invite_body(ids, address)])
    assert (await alice.state(room_id, "m.room.member", bob.user_id)).json()["membership"] == "invite"


async def test_an_unbound_address_is_invited_when_bound(srv: RunningServer, ids: FakeIdentityServer) -> None:
    alice, bob = await new_user(srv, "alice"), await new_user(srv, "bob")
    await alice.call("PUT", "/profile/" + quote(alice.user_id) + "/displayname", {"displayname": "Alice"})
    room_id = await alice.create_room(preset="private_chat", name="Lemurs")
    address = _address()
    await alice.call("POST", f"/rooms/{room_id}/invite", _invite_body(ids, address))
    # The identity server stored the invite with the room's and the inviter's details...
    stored = ids.last_store_invite
    assert stored["address"] == address.lower() and stored["room_id"] == room_id
    assert stored["sender"] == alice.user_id and stored["room_name"] == "Lemurs"
    assert stored["sender_display_name"] == "Alice" and stored["room_join_rules"] == "invite"
    # ...and the room has the m.room.third_party_invite with its keys.
    [tpi] = await _tpi_events(alice, room_id)
    assert_matches_schema("event-schemas/schema/m.room.third_party_invite.yaml", tpi)
    assert tpi["sender"] == alice.user_id
    assert tpi["content"]["public_key"] == ids.public_key
    assert tpi["content"]["key_validity_url"] == f"https://{ids.name}/_matrix/identity/v2/pubkey/isvalid"
    assert [k["public_key"] for k in tpi["content"]["public_keys"]][0] == ids.public_key
    assert len(tpi["content"]["public_keys"]) == 2  # and the invite's ephemeral key
    assert tpi["content"]["display_name"] == "i...@e..."
    # Bob binds the address: the identity server tells us, and Bob is invited.
    await _bind(ids, bob, address)
    assert ids.onbind_answers[-1] == 200
    member = (await alice.state(room_id, "m.room.member", bob.user_id)).json()
    assert member["membership"] == "invite"
    assert member["third_party_invite"]["display_name"] == "i...@e..."
    assert member["third_party_invite"]["signed"]["token"] == tpi["state_key"]
    invite = (await bob.call("GET", "/sync", params={"timeout": "0"})).json()["rooms"]["invite"][room_id]
    senders = {e["state_key"] for e in invite["invite_state"]["events"] if e["type"] == "m.room.member"}
    assert alice.user_id in senders
    await bob.call("POST", f"/join/{room_id}", {})
    assert await membership(alice, room_id, bob.user_id) == "join"


async def test_the_invite_stands_after_the_inviter_left(srv: RunningServer, ids: FakeIdentityServer) -> None:
    alice, carol, bob = await new_user(srv, "alice"), await new_user(srv, "carol"), await new_user(srv, "bob")
    room_id = await alice.create_room(preset="private_chat")
    await alice.call("POST", f"/rooms/{room_id}/invite", {"user_id": carol.user_id})
    await carol.call("POST", f"/join/{room_id}", {})
    address = _address()
    await alice.call("POST", f"/rooms/{room_id}/invite", _invite_body(ids, address))
    await alice.call("POST", f"/rooms/{room_id}/leave", {})
    await _bind(ids, bob, address)
    await bob.call("POST", f"/join/{room_id}", {})
    assert await membership(carol, room_id, bob.user_id) == "join"


async def test_inviting_needs_the_invite_power_level(srv: RunningServer, ids: FakeIdentityServer) -> None:
    alice, dave = await new_user(srv, "alice"), await new_user(srv, "dave")
    room_id = await alice.create_room(
        preset="public_chat", power_level_content_override={"invite": 50}
    )
    await dave.call("POST", f"/join/{room_id}", {})
    stored_before = len(ids.invites)
    resp = await dave.call("POST", f"/rooms/{room_id}/invite", _invite_body(ids, _address()), expect=403)
    assert resp.json()["errcode"] == "M_FORBIDDEN"
    assert len(ids.invites) == stored_before  # nothing was asked of the identity server
    # With the room's invite level at 0 anyone joined may (SyTest "... with no ops").
    await alice.call("PUT", f"/rooms/{room_id}/state/m.room.power_levels/", {"invite": 0})
    await dave.call("POST", f"/rooms/{room_id}/invite", _invite_body(ids, _address()))
    assert [e["sender"] for e in await _tpi_events(alice, room_id)] == [dave.user_id]


async def test_join_with_third_party_signed(srv: RunningServer, ids: FakeIdentityServer) -> None:
    alice, bob = await new_user(srv, "alice"), await new_user(srv, "bob")
    room_id = await alice.create_room(preset="private_chat")
    await alice.call("POST", f"/rooms/{room_id}/invite", _invite_body(ids, _address()))
    [tpi] = await _tpi_events(alice, room_id)
    signed = ids.sign_for_join(tpi["state_key"], bob.user_id, alice.user_id)
    # Signed for someone else: refused.
    other = ids.sign_for_join(tpi["state_key"], alice.user_id, alice.user_id)
    resp = await bob.call("POST", f"/join/{room_id}", {"third_party_signed": other}, expect=403)
    assert resp.json()["errcode"] == "M_FORBIDDEN"
    await bob.call("POST", f"/join/{room_id}", {"third_party_signed": signed})
    assert await membership(alice, room_id, bob.user_id) == "join"


async def test_bad_signatures_and_revoked_keys_give_no_invite(
    srv: RunningServer, ids: FakeIdentityServer
) -> None:
    alice, bob = await new_user(srv, "alice"), await new_user(srv, "bob")
    room_id = await alice.create_room(preset="private_chat")
    # Signed with a key the room does not know: the onbind is refused, no invite.
    address = _address()
    await alice.call("POST", f"/rooms/{room_id}/invite", _invite_body(ids, address))
    ids.rotate_keys()
    await _bind(ids, bob, address)
    assert ids.onbind_answers[-1] == 403
    assert await membership(alice, room_id, bob.user_id) is None
    # The ephemeral key of an invite, revoked at the identity server: no join with it.
    await alice.call("POST", f"/rooms/{room_id}/invite", _invite_body(ids, _address()))
    token = [e["state_key"] for e in await _tpi_events(alice, room_id)][-1]
    signed = ids.sign_for_join(token, bob.user_id, alice.user_id)
    ids.revoked.add(next(
        k["public_key"] for e in await _tpi_events(alice, room_id) if e["state_key"] == token
        for k in e["content"]["public_keys"] if k["key_validity_url"].endswith("/ephemeral/isvalid")
    ))
    resp = await bob.call("POST", f"/join/{room_id}", {"third_party_signed": signed}, expect=403)
    assert resp.json()["errcode"] == "M_FORBIDDEN"
    assert await membership(alice, room_id, bob.user_id) is None


async def test_exchange_refuses_a_wrong_signature(srv: RunningServer, ids: FakeIdentityServer) -> None:
    """PUT /exchange_third_party_invite from another server, with a signed block the room's
    keys do not verify: 403, and nothing is sent."""
    alice = await new_user(srv, "alice")
    room_id = await alice.create_room(preset="private_chat")
    await alice.call("POST", f"/rooms/{room_id}/invite", _invite_body(ids, _address()))
    [tpi] = await _tpi_events(alice, room_id)
    remote = await RemoteServer.trusted_by(srv)
    target = remote.user("zed")
    forged = ids.sign_for_join(tpi["state_key"], target, alice.user_id)
    forged["signatures"][ids.name] = {"ed25519:0": "A" * 86}
    body = {
        "type": "m.room.member", "room_id": room_id, "sender": alice.user_id, "state_key": target,
        "content": {"membership": "invite", "third_party_invite": {"display_name": "z", "signed": forged}},
    }
    path = f"/_matrix/federation/v1/exchange_third_party_invite/{quote(room_id, safe='')}"
    resp = await remote.request(srv, "PUT", path, body)
    assert resp.status_code == 403, resp.text
    assert resp.json()["errcode"] == "M_FORBIDDEN"
    # For a user of another server than the asking one: refused before anything else.
    resp = await remote.request(srv, "PUT", path, {**body, "state_key": "@zed:elsewhere.example"})
    assert resp.status_code == 403
    # Not a third-party invite at all.
    resp = await remote.request(srv, "PUT", path, {**body, "content": {"membership": "invite"}})
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_BAD_JSON"
    assert await membership(alice, room_id, target) is None


async def test_onbind_and_invite_errors_are_matrix_errors(srv: RunningServer, ids: FakeIdentityServer) -> None:
    alice = await new_user(srv, "alice")
    room_id = await alice.create_room(preset="private_chat")
    resp = await srv.federation.put("/_matrix/federation/v1/3pid/onbind", json={"mxid": "@x:elsewhere", "invites": []})
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_INVALID_PARAM"
    resp = await srv.federation.put("/_matrix/federation/v1/3pid/onbind", json={"mxid": alice.user_id, "invites": {}})
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_BAD_JSON"
    body = {**_invite_body(ids, _address()), "medium": "carrier-pigeon"}
    resp = await alice.call("POST", f"/rooms/{room_id}/invite", body, expect=400)
    assert resp.json()["errcode"] == "M_INVALID_PARAM"
    resp = await alice.call("POST", f"/rooms/{room_id}/invite", {"medium": "email", "address": "a@b.c"}, expect=400)
    assert resp.json()["errcode"] == "M_MISSING_PARAM"
    resp = await alice.call("POST", "/createRoom", {"invite_3pid": [{"medium": "email"}]}, expect=400)
    assert resp.json()["errcode"] == "M_MISSING_PARAM"
    body = {**_invite_body(ids, _address()), "id_access_token": "bad"}
    resp = await alice.call("POST", f"/rooms/{room_id}/invite", body, expect=401)
    assert resp.json()["errcode"] == "M_UNAUTHORIZED"


# --- two servers -----------------------------------------------------------------------------


@pytest.fixture
async def pair(
    start_server: StartServer, tmp_path: Path, identity_server: FakeIdentityServer
) -> AsyncIterator[tuple[RunningServer, RunningServer]]:
    servers = []
    for tag in ("a", "b"):
        overrides = tls_overrides(tmp_path / f"tls-{tag}")
        if overrides is None:
            pytest.skip("no way to make a TLS certificate (openssl or cryptography)")
        srv = await start_server({**overrides, **OPEN, **identity_overrides(identity_server)})
        await srv.client.aclose()
        srv.client = httpx.AsyncClient(base_url=srv.listening.client_url, timeout=20, verify=False)
        identity_server.homeservers[srv.config.server.server_name] = srv.listening.federation_url or ""
        servers.append(srv)
    yield servers[0], servers[1]
    for srv in servers:
        await _client(srv).aclose()


async def test_over_federation_the_invitees_server_asks_the_inviters(
    pair: tuple[RunningServer, RunningServer], identity_server: FakeIdentityServer
) -> None:
    a, b = pair
    ids = identity_server
    alice, bob = await new_user(a, "alice"), await new_user(b, "bob")
    room_id = await alice.create_room(preset="private_chat", room_version="10")
    address = _address()
    await alice.call("POST", f"/rooms/{room_id}/invite", _invite_body(ids, address))
    # B is not in the room: its onbind asks A (exchange_third_party_invite), A invites bob.
    await _bind(ids, bob, address)
    assert ids.onbind_answers[-1] == 200
    member = (await alice.state(room_id, "m.room.member", bob.user_id)).json()
    assert member["membership"] == "invite" and member["third_party_invite"]["display_name"]
    await eventually(lambda: _invited(bob, room_id))
    await bob.call("POST", f"/join/{quote(room_id)}", {})
    assert await membership(alice, room_id, bob.user_id) == "join"


async def test_over_federation_a_server_in_the_room_sends_the_invite_itself(
    pair: tuple[RunningServer, RunningServer], identity_server: FakeIdentityServer
) -> None:
    a, b = pair
    ids = identity_server
    alice, bob, joe = await new_user(a, "alice"), await new_user(b, "bob"), await new_user(b, "joe")
    room_id = await alice.create_room(preset="public_chat", room_version="10")
    await joe.call("POST", f"/join/{quote(room_id)}", {})
    address = _address()
    await alice.call("POST", f"/rooms/{room_id}/invite", _invite_body(ids, address))

    async def b_has_the_third_party_invite() -> bool:
        return len(await _tpi_events(joe, room_id)) == 1

    await eventually(b_has_the_third_party_invite)
    # B is in the room: it sends the invite (sender alice, signed by B), A accepts it.
    await _bind(ids, bob, address)
    assert ids.onbind_answers[-1] == 200
    member = (await joe.state(room_id, "m.room.member", bob.user_id)).json()
    assert member["membership"] == "invite" and member["third_party_invite"]["display_name"]

    async def a_has_the_invite() -> bool:
        return await membership(alice, room_id, bob.user_id) == "invite"

    await eventually(a_has_the_invite)
    await bob.call("POST", f"/join/{quote(room_id)}", {})

    async def a_has_the_join() -> bool:
        return await membership(alice, room_id, bob.user_id) == "join"

    await eventually(a_has_the_join)


async def _invited(user: User, room_id: str) -> bool:
    rooms = (await user.call("GET", "/sync", params={"timeout": "0"})).json()["rooms"]
    return room_id in rooms.get("invite", {})
