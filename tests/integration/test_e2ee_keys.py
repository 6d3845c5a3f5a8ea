"""POST /keys/upload, /keys/query, /keys/claim over HTTP (keys.yaml), with real ed25519
signatures, and the key counts /sync reports to the device."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import pytest

from tests.conftest import RunningServer
from tests.integration.account_helpers import running_server
from tests.integration.e2ee_helpers import DeviceKeyring, upload
from tests.integration.sync_helpers import User, new_user, sync
from tests.spec_schema import assert_matches_operation

_names = itertools.count(1)


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path_factory.mktemp("e2ee_keys")) as s:
        yield s


async def _user(srv: RunningServer) -> User:
    return await new_user(srv.client, f"keys{next(_names)}")


async def test_upload_query_with_display_name(srv: RunningServer) -> None:
    alice, bob = await _user(srv), await _user(srv)
    keys = DeviceKeyring.of(alice)
    resp = await alice.put(f"/devices/{alice.device_id}", {"display_name": "Alice's phone"})
    assert resp.status_code == 200
    body = await upload(alice, {"device_keys": keys.device_keys(), "one_time_keys": keys.one_time_keys(3)})
    assert body == {"one_time_key_counts": {"signed_curve25519": 3}}
    assert_matches_operation("client-server/keys.yaml", "/keys/upload", "post", 200, body)

    resp = await bob.post("/keys/query", {"device_keys": {alice.user_id: []}})
    assert resp.status_code == 200, resp.text
    found = resp.json()
    assert_matches_operation("client-server/keys.yaml", "/keys/query", "post", 200, found)
    device = found["device_keys"][alice.user_id][alice.device_id]
    assert device["unsigned"] == {"device_display_name": "Alice's phone"}
    del device["unsigned"]
    assert device == keys.device_keys()
    assert found["failures"] == {}
    # A list of devices names the wanted ones; unknown devices and users are just absent.
    resp = await bob.post("/keys/query", {"device_keys": {alice.user_id: ["NOPE"], "@x:test.localhost": []}})
    assert resp.json()["device_keys"] == {alice.user_id: {}, "@x:test.localhost": {}}


async def test_upload_without_device_keys_and_reupload(srv: RunningServer) -> None:
    alice = await _user(srv)
    keys = DeviceKeyring.of(alice)
    otks = keys.one_time_keys(2)
    assert (await upload(alice, {"one_time_keys": otks}))["one_time_key_counts"] == {"signed_curve25519": 2}
    # The same keys again change nothing; the same id with another key is refused.
    assert (await upload(alice, {"one_time_keys": otks}))["one_time_key_counts"] == {"signed_curve25519": 2}
    key_id = next(iter(otks))
    body = await upload(alice, {"one_time_keys": {key_id: {"key": "other"}}}, status=400)
    assert body["errcode"] == "M_INVALID_PARAM"
    # Nothing uploaded: the count is still reported (clients read a missing one as "unchanged").
    assert (await upload(alice, {}))["one_time_key_counts"] == {"signed_curve25519": 2}


@pytest.mark.parametrize(
    "mutate, errcode",
    [
        (lambda k, d: d.update(user_id="@someone:test.localhost"), "M_INVALID_PARAM"),
        (lambda k, d: d.update(device_id="OTHER"), "M_INVALID_PARAM"),
        (lambda k, d: d.pop("signatures"), "M_BAD_JSON"),
        (lambda k, d: d.update(signatures={k.user_id: "sig"}), "M_BAD_JSON"),
        (lambda k, d: d.update(algorithms="m.olm"), "M_BAD_JSON"),
        (lambda k, d: d["keys"].update({"curve25519:X": 5}), "M_BAD_JSON"),
    ],
    ids=["other-user", "other-device", "unsigned", "bad-signatures", "bad-algorithms", "bad-key"],
)
async def test_bad_device_keys_refused(srv: RunningServer, mutate, errcode: str) -> None:
    alice = await _user(srv)
    keys = DeviceKeyring.of(alice)
    device_keys = keys.device_keys()
    mutate(keys, device_keys)
    body = await upload(alice, {"device_keys": device_keys}, status=400)
    assert body["errcode"] == errcode
    resp = await alice.post("/keys/query", {"device_keys": {alice.user_id: []}})
    assert resp.json()["device_keys"][alice.user_id] == {}


async def test_keys_are_opaque_and_served_as_uploaded(srv: RunningServer) -> None:
    """Key values and the self-signature are the clients' to check (they verify every device
    key they fetch), as in Synapse: placeholder keys with a signature that verifies nothing are
    stored, and served back with `unsigned` present even without a display name."""
    alice, bob = await _user(srv), await _user(srv)
    placeholder = {
        "user_id": alice.user_id,
        "device_id": alice.device_id,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2"],
        "keys": {"ed25519:test": "not+a+key", f"curve25519:{alice.device_id}": "curve+key"},
        "signatures": {alice.user_id: {f"ed25519:{alice.device_id}": "self+signature"}},
    }
    await upload(alice, {"device_keys": placeholder})
    resp = await bob.post("/keys/query", {"device_keys": {alice.user_id: []}})
    assert resp.json()["device_keys"][alice.user_id] == {
        alice.device_id: {**placeholder, "unsigned": {}}
    }


async def test_claim_oldest_first_then_fallback(srv: RunningServer) -> None:
    alice, bob = await _user(srv), await _user(srv)
    keys = DeviceKeyring.of(alice)
    first, second = keys.one_time_keys(1), keys.one_time_keys(1)
    fallback = keys.one_time_keys(1, fallback=True)
    await upload(alice, {"device_keys": keys.device_keys(), "one_time_keys": first})
    await upload(alice, {"one_time_keys": second, "fallback_keys": fallback})
    want = {"one_time_keys": {alice.user_id: {alice.device_id: "signed_curve25519"}}}

    claimed = []
    for _ in range(4):
        resp = await bob.post("/keys/claim", want)
        assert resp.status_code == 200, resp.text
        assert_matches_operation("client-server/keys.yaml", "/keys/claim", "post", 200, resp.json())
        claimed.append(resp.json()["one_time_keys"][alice.user_id][alice.device_id])
    # Upload order, each one-time key once; then the fallback key, again and again.
    assert claimed == [first, second, fallback, fallback]
    counts = await sync(alice)
    assert counts["device_one_time_keys_count"] == {"signed_curve25519": 0}
    assert counts["device_unused_fallback_key_types"] == []


async def test_fallback_key_replacement_and_sync_fields(srv: RunningServer) -> None:
    alice, bob = await _user(srv), await _user(srv)
    keys = DeviceKeyring.of(alice)
    fallback = keys.one_time_keys(1, fallback=True)
    await upload(alice, {"one_time_keys": keys.one_time_keys(2), "fallback_keys": fallback})
    body = await sync(alice)
    assert body["device_one_time_keys_count"] == {"signed_curve25519": 2}
    assert body["device_unused_fallback_key_types"] == ["signed_curve25519"]
    for _ in range(3):  # two one-time keys, then the fallback key
        await bob.post("/keys/claim", {"one_time_keys": {alice.user_id: {alice.device_id: "signed_curve25519"}}})
    assert (await sync(alice))["device_unused_fallback_key_types"] == []
    # Re-sending the used key does not make it unused; a new key does.
    await upload(alice, {"fallback_keys": fallback})
    assert (await sync(alice))["device_unused_fallback_key_types"] == []
    await upload(alice, {"org.matrix.msc2732.fallback_keys": keys.one_time_keys(1, fallback=True)})
    assert (await sync(alice))["device_unused_fallback_key_types"] == ["signed_curve25519"]
    two = {**keys.one_time_keys(1, fallback=True), **keys.one_time_keys(1, fallback=True)}
    assert (await upload(alice, {"fallback_keys": two}, status=400))["errcode"] == "M_INVALID_PARAM"


async def test_claim_unknown_and_remote(srv: RunningServer) -> None:
    bob = await _user(srv)
    resp = await bob.post("/keys/claim", {"one_time_keys": {
        "@nobody:test.localhost": {"DEV": "signed_curve25519"},
        "@remote:elsewhere.example": {"DEV": "signed_curve25519"},
    }})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["one_time_keys"] == {}
    # A server that cannot be reached (no such name here) is reported in failures.
    assert list(body["failures"]) == ["elsewhere.example"]
    resp = await bob.post("/keys/query", {"device_keys": {"@remote:elsewhere.example": []}})
    assert list(resp.json()["failures"]) == ["elsewhere.example"]


@pytest.mark.parametrize(
    "path, body, status, errcode",
    [
        ("/keys/query", {}, 400, "M_MISSING_PARAM"),
        ("/keys/query", {"device_keys": []}, 400, "M_BAD_JSON"),
        ("/keys/query", {"device_keys": {"@a:b": "DEV"}}, 400, "M_BAD_JSON"),
        ("/keys/query", {"device_keys": {"not-a-user": []}}, 400, "M_INVALID_PARAM"),
        ("/keys/query", {"device_keys": {}, "timeout": "soon"}, 400, "M_BAD_JSON"),
        ("/keys/claim", {}, 400, "M_MISSING_PARAM"),
        ("/keys/claim", {"one_time_keys": {"@a:b": ["DEV"]}}, 400, "M_BAD_JSON"),
        ("/keys/claim", {"one_time_keys": {"@a:b": {"DEV": 1}}}, 400, "M_BAD_JSON"),
        ("/keys/upload", {"one_time_keys": {"no_colon": {"key": "x"}}}, 400, "M_INVALID_PARAM"),
        ("/keys/upload", {"one_time_keys": {"alg:id": 5}}, 400, "M_BAD_JSON"),
        ("/keys/upload", {"one_time_keys": []}, 400, "M_BAD_JSON"),
        ("/keys/upload", {"device_keys": "keys"}, 400, "M_BAD_JSON"),
    ],
)
async def test_bad_requests(srv: RunningServer, path: str, body: dict, status: int, errcode: str) -> None:
    user = await _user(srv)
    resp = await user.post(path, body)
    assert resp.status_code == status, resp.text
    assert resp.json()["errcode"] == errcode


@pytest.mark.parametrize("path", ["/keys/upload", "/keys/query", "/keys/claim"])
async def test_needs_access_token(srv: RunningServer, path: str) -> None:
    resp = await srv.client.post(f"/_matrix/client/v3{path}", json={})
    assert resp.status_code == 401
    assert resp.json()["errcode"] == "M_MISSING_TOKEN"


async def test_deleted_device_loses_its_keys(srv: RunningServer) -> None:
    alice = await _user(srv)
    keys = DeviceKeyring.of(alice)
    await upload(alice, {"device_keys": keys.device_keys(), "one_time_keys": keys.one_time_keys(1)})
    resp = await alice.post("/logout", {})
    assert resp.status_code == 200
    bob = await _user(srv)
    resp = await bob.post("/keys/query", {"device_keys": {alice.user_id: []}})
    assert resp.json()["device_keys"][alice.user_id] == {}
    resp = await bob.post("/keys/claim", {"one_time_keys": {alice.user_id: {alice.device_id: "signed_curve25519"}}})
    assert resp.json()["one_time_keys"] == {}


async def test_long_poll_without_news_still_reports_key_counts(srv: RunningServer) -> None:
    alice = await _user(srv)
    keys = DeviceKeyring.of(alice)
    await upload(alice, {"one_time_keys": keys.one_time_keys(2), "fallback_keys": keys.one_time_keys(1, fallback=True)})
    since = (await sync(alice))["next_batch"]
    body = await sync(alice, since=since, timeout=100)  # times out: nothing new
    assert body["next_batch"] == since
    assert body["device_one_time_keys_count"] == {"signed_curve25519": 2}
    assert body["device_unused_fallback_key_types"] == ["signed_curve25519"]
    assert body["to_device"] == {"events": []}
