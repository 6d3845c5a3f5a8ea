"""Dehydrated devices (MSC3814) side by side with Synapse, which serves the unstable endpoints
when `experimental_features.msc3814_enabled` is on: one scenario runs against each server and
every observation (status, errcode, the shape and content of each answer) must be the same.

The scenario is what Element does: park a device with its keys, have another user claim a key
and send it to-device messages, read them back in batches through /events (POST, as the MSC,
and GET, as Synapse's later form), replace the device, delete it. Synapse-specific tokens and
ids are normalized away; everything else is compared as is.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.integration.account_helpers import register, running_server
from tests.integration.dehydrated_helpers import PATH, Dehydrated
from tests.interop.synapse_server import SynapseServer

pytestmark = pytest.mark.interop

Register = Callable[[str], Awaitable[tuple[str, str, str]]]  # localpart -> user, token, device
_runs = itertools.count(1)


def _shape(resp: httpx.Response) -> Any:
    """What is compared of an answer: status and errcode, or the body with tokens as '<token>'."""
    body = resp.json()
    if resp.status_code != 200:
        return resp.status_code, body.get("errcode")
    if "next_batch" in body:
        body = {**body, "next_batch": "<token>"}
    return 200, body


async def _scenario(http: httpx.AsyncClient, register_user: Register) -> list[tuple[str, Any]]:
    run = next(_runs)
    bob_id, bob_token, _ = await register_user(f"dhbob{run}")
    alice_id, alice_token, _ = await register_user(f"dhalice{run}")
    bob = {"Authorization": f"Bearer {bob_token}"}
    alice = {"Authorization": f"Bearer {alice_token}"}
    seen: list[tuple[str, Any]] = []

    async def call(step: str, method: str, path: str, headers: dict[str, str],
                   body: Any = None, **params: Any) -> httpx.Response:
        resp = await http.request(method, path, json=body, params=params, headers=headers)
        seen.append((step, _shape(resp)))
        return resp

    await call("get none", "GET", PATH, bob)
    await call("delete none", "DELETE", PATH, bob)
    await call("events none", "POST", f"{PATH}/NOPE/events", bob, {})
    parked = Dehydrated(bob_id)
    body = parked.body(one_time_keys=2)
    await call("put", "PUT", PATH, bob, body)
    got = await http.get(PATH, headers=bob)
    seen.append(("get", (got.status_code, got.json()["device_id"], got.json()["device_data"] == body["device_data"])))
    devices = (await http.get("/_matrix/client/v3/devices", headers=bob)).json()["devices"]
    seen.append(("listed", parked.device_id in {d["device_id"] for d in devices}))
    claim = await http.post("/_matrix/client/v3/keys/claim", headers=alice, json={
        "one_time_keys": {bob_id: {parked.device_id: "signed_curve25519"}}})
    seen.append(("claimed", list(claim.json()["one_time_keys"][bob_id])))
    for i in range(3):
        messages = {bob_id: {parked.device_id: {"i": i}}}
        await http.put(f"/_matrix/client/v3/sendToDevice/m.test/dh{run}-{i}", headers=alice,
                       json={"messages": messages})
    events = f"{PATH}/{quote(parked.device_id, safe='')}/events"
    first = await call("post page 1", "POST", events, bob, {}, limit=2)
    second = await call("post page 2", "POST", events, bob,
                        {"next_batch": first.json()["next_batch"]}, limit=2)
    await call("post last", "POST", events, bob, {"next_batch": second.json()["next_batch"]})
    await call("post again from the start", "POST", events, bob, {})
    page = await call("get page 1", "GET", events, bob, limit=2)
    await call("get page 2", "GET", events, bob, limit=2, **{"from": page.json()["next_batch"]})
    await call("bad token", "POST", events, bob, {"next_batch": "nonsense"})
    await call("another user's", "POST", events, alice, {})
    await call("not the dehydrated one", "POST", f"{PATH}/OTHER/events", bob, {})

    replacement = Dehydrated(bob_id)
    await call("replace", "PUT", PATH, bob, replacement.body())
    devices = (await http.get("/_matrix/client/v3/devices", headers=bob)).json()["devices"]
    ids = {d["device_id"] for d in devices}
    seen.append(("old gone, new listed", (parked.device_id in ids, replacement.device_id in ids)))
    query = await http.post("/_matrix/client/v3/keys/query", headers=alice,
                            json={"device_keys": {bob_id: []}})
    seen.append(("old keys gone", sorted(query.json()["device_keys"][bob_id]) == [replacement.device_id]))
    await call("old events", "POST", events, bob, {})
    await call("delete", "DELETE", PATH, bob)
    await call("get after delete", "GET", PATH, bob)
    names = {parked.device_id: "<device 0>", replacement.device_id: "<device 1>",
             bob_id: "<bob>", alice_id: "<alice>"}
    return [(step, _normalize(value, names)) for step, value in seen]


def _normalize(value: Any, names: dict[str, str]) -> str:
    """Device ids and user ids differ between the runs: name them by role."""
    text = json.dumps(value, sort_keys=True)
    for real, role in names.items():
        text = text.replace(real, role)
    return text


async def test_same_answers_as_synapse(synapse: SynapseServer, tmp_path: Path) -> None:
    async def on_synapse(localpart: str) -> tuple[str, str, str]:
        body = synapse.register(localpart)
        return body["user_id"], body["access_token"], body["device_id"]

    async with httpx.AsyncClient(base_url=synapse.base_url, verify=False, timeout=30) as http:
        theirs = await _scenario(http, on_synapse)

    async with running_server(tmp_path / "ours") as srv:
        async def on_ours(localpart: str) -> tuple[str, str, str]:
            body = await register(srv.client, localpart)
            return body["user_id"], body["access_token"], body["device_id"]

        ours = await _scenario(srv.client, on_ours)
    assert len(ours) == len(theirs)
    for mine, synapses in zip(ours, theirs):
        assert mine == synapses
