"""Our users resolving a real Synapse's aliases and reading its users' profiles (TLS on
loopback): GET /directory/room/{alias} and GET /profile/{userId}[/{keyName}] through the
federation query API; unknown aliases and users are 404 M_NOT_FOUND until they exist there."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.integration.account_helpers import register
from tests.integration.room_helpers import User
from tests.interop.synapse_server import SynapseServer
from tests.interop.test_synapse_joins import clients, dendrite_peer  # noqa: F401  (fixtures)

pytestmark = pytest.mark.interop

_names = itertools.count(1)


async def dl_user(client: httpx.AsyncClient) -> User:
    body = await register(client, f"querier{next(_names)}")
    return User(client, body["user_id"], body["access_token"], body["device_id"])


async def syn_user(synapse: SynapseServer, client: httpx.AsyncClient, localpart: str) -> User:
    body = await asyncio.to_thread(synapse.register, localpart)
    return User(client, body["user_id"], body["access_token"], body.get("device_id", ""))


def not_found(resp: httpx.Response) -> bool:
    return resp.status_code == 404 and resp.json().get("errcode") == "M_NOT_FOUND"


async def test_our_user_resolves_an_alias_created_on_synapse(synapse: SynapseServer, clients: Any) -> None:
    ours, theirs = clients
    alice = await dl_user(ours)
    bob = await syn_user(synapse, theirs, f"aliasmaker{next(_names)}")
    localpart = f"interop{next(_names)}"
    alias = f"#{localpart}:{synapse.server_name}"
    url = f"/directory/room/{quote(alias, safe='')}"

    # Unknown on Synapse: 404, and the miss is not remembered.
    assert not_found(await alice.call("GET", url, expect=None))
    room_id = await bob.create_room(room_alias_name=localpart)

    body = (await alice.call("GET", url)).json()
    assert body["room_id"] == room_id
    assert synapse.server_name in body["servers"]
    # Synapse itself agrees.
    assert (await bob.call("GET", url)).json()["room_id"] == room_id


async def test_our_user_reads_a_synapse_users_profile(synapse: SynapseServer, clients: Any) -> None:
    ours, theirs = clients
    alice = await dl_user(ours)
    bob = await syn_user(synapse, theirs, f"profiled{next(_names)}")
    await bob.call("PUT", f"/profile/{quote(bob.user_id)}/displayname", {"displayname": "Bob on Synapse"})
    avatar = {"avatar_url": "mxc://synapse/bobface"}
    await bob.call("PUT", f"/profile/{quote(bob.user_id)}/avatar_url", avatar)
    base = f"/profile/{quote(bob.user_id)}"

    whole = (await alice.call("GET", base)).json()
    assert whole == {"displayname": "Bob on Synapse", "avatar_url": "mxc://synapse/bobface"}
    assert (await alice.call("GET", f"{base}/displayname")).json() == {"displayname": "Bob on Synapse"}
    assert (await alice.call("GET", f"{base}/avatar_url")).json() == {"avatar_url": "mxc://synapse/bobface"}
    # profile.yaml asks no access token for these.
    anonymous = await ours.get(f"/_matrix/client/v3{base}/displayname")
    assert anonymous.status_code == 200 and anonymous.json() == {"displayname": "Bob on Synapse"}


async def test_unknown_synapse_user_is_404_until_registered(synapse: SynapseServer, clients: Any) -> None:
    ours, theirs = clients
    alice = await dl_user(ours)
    localpart = f"notyet{next(_names)}"
    user_id = f"@{localpart}:{synapse.server_name}"
    base = f"/profile/{quote(user_id)}"
    for path in (base, f"{base}/displayname", f"{base}/avatar_url"):
        assert not_found(await alice.call("GET", path, expect=None)), path

    bob = await syn_user(synapse, theirs, localpart)
    await bob.call("PUT", f"{base}/displayname", {"displayname": "Now here"})
    assert (await alice.call("GET", f"{base}/displayname")).json() == {"displayname": "Now here"}
    # A field the user has not set is still 404.
    assert not_found(await alice.call("GET", f"{base}/avatar_url", expect=None))
