"""Server-side key backups over HTTP (key_backup.yaml): versions, keys at all three levels, the
"better key wins" rules, etag and count."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import RunningServer
from tests.integration.account_helpers import running_server
from tests.integration.sync_helpers import User, new_user
from tests.spec_schema import assert_matches_operation

_names = itertools.count(1)
ALGORITHM = "m.megolm_backup.v1.curve25519-aes-sha2"
ROOM = "!room:test.localhost"
SPEC = "client-server/key_backup.yaml"


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path_factory.mktemp("key_backup")) as s:
        yield s


async def _user(srv: RunningServer) -> User:
    return await new_user(srv.client, f"kb{next(_names)}")


async def _call(user: User, method: str, path: str, body: Any = None, status: int = 200, **params: Any) -> Any:
    resp = await user.client.request(
        method, f"/_matrix/client/v3{path}", json=body, params=params, headers=user.headers
    )
    assert resp.status_code == status, resp.text
    return resp.json()


async def _new_backup(user: User, public_key: str = "pub") -> str:
    body = {"algorithm": ALGORITHM, "auth_data": {"public_key": public_key}}
    created = await _call(user, "POST", "/room_keys/version", body)
    assert_matches_operation(SPEC, "/room_keys/version", "post", 200, created)
    return str(created["version"])


def _key(index: int = 0, forwarded: int = 0, verified: bool = False, data: str = "x") -> dict[str, Any]:
    return {
        "first_message_index": index, "forwarded_count": forwarded, "is_verified": verified,
        "session_data": {"ciphertext": data},
    }


async def test_versions_lifecycle(srv: RunningServer) -> None:
    alice = await _user(srv)
    assert (await _call(alice, "GET", "/room_keys/version", status=404))["errcode"] == "M_NOT_FOUND"
    first = await _new_backup(alice, "one")
    second = await _new_backup(alice, "two")
    assert int(second) > int(first)
    current = await _call(alice, "GET", "/room_keys/version")
    assert_matches_operation(SPEC, "/room_keys/version", "get", 200, current)
    assert current == {"algorithm": ALGORITHM, "auth_data": {"public_key": "two"}, "count": 0,
                       "etag": current["etag"], "version": second}
    assert (await _call(alice, "GET", f"/room_keys/version/{first}"))["auth_data"] == {"public_key": "one"}
    # Only auth_data may change.
    update = {"algorithm": ALGORITHM, "auth_data": {"public_key": "two", "signatures": {}}, "version": second}
    assert await _call(alice, "PUT", f"/room_keys/version/{second}", update) == {}
    assert (await _call(alice, "GET", "/room_keys/version"))["auth_data"]["signatures"] == {}
    bad = await _call(alice, "PUT", f"/room_keys/version/{second}", {**update, "algorithm": "other"}, status=400)
    assert bad["errcode"] == "M_INVALID_PARAM"
    bad = await _call(alice, "PUT", f"/room_keys/version/{second}", {**update, "version": first}, status=400)
    assert bad["errcode"] == "M_INVALID_PARAM"
    # Deleting the current backup makes the older one current; deleting twice is fine.
    assert await _call(alice, "DELETE", f"/room_keys/version/{second}") == {}
    assert await _call(alice, "DELETE", f"/room_keys/version/{second}") == {}
    assert (await _call(alice, "GET", "/room_keys/version"))["version"] == first
    await _call(alice, "GET", f"/room_keys/version/{second}", status=404)
    await _call(alice, "DELETE", "/room_keys/version/999", status=404)
    await _call(alice, "PUT", "/room_keys/version/999", {**update, "version": "999"}, status=404)
    # A new backup never reuses a deleted one's version.
    assert int(await _new_backup(alice)) > int(second)


async def test_backups_are_per_user(srv: RunningServer) -> None:
    alice, bob = await _user(srv), await _user(srv)
    version = await _new_backup(alice)
    await _call(bob, "GET", f"/room_keys/version/{version}", status=404)
    await _call(bob, "GET", "/room_keys/keys", status=404, version=version)


async def test_keys_at_every_level_with_etag_and_count(srv: RunningServer) -> None:
    alice = await _user(srv)
    version = await _new_backup(alice)
    etag0 = (await _call(alice, "GET", "/room_keys/version"))["etag"]
    everything = {"rooms": {ROOM: {"sessions": {"s1": _key(), "s2": _key()}}}}
    result = await _call(alice, "PUT", "/room_keys/keys", everything, version=version)
    assert_matches_operation(SPEC, "/room_keys/keys", "put", 200, result)
    assert result["count"] == 2 and result["etag"] != etag0
    room2 = "!other:test.localhost"
    result = await _call(alice, "PUT", f"/room_keys/keys/{room2}", {"sessions": {"s3": _key()}}, version=version)
    assert result["count"] == 3
    result = await _call(alice, "PUT", f"/room_keys/keys/{room2}/s4", _key(), version=version)
    assert result["count"] == 4

    got = await _call(alice, "GET", "/room_keys/keys", version=version)
    assert_matches_operation(SPEC, "/room_keys/keys", "get", 200, got)
    assert got == {"rooms": {ROOM: {"sessions": {"s1": _key(), "s2": _key()}},
                             room2: {"sessions": {"s3": _key(), "s4": _key()}}}}
    assert await _call(alice, "GET", f"/room_keys/keys/{ROOM}", version=version) == {"sessions": {"s1": _key(), "s2": _key()}}
    assert await _call(alice, "GET", f"/room_keys/keys/{ROOM}/s1", version=version) == _key()
    assert await _call(alice, "GET", "/room_keys/keys/!none:x", version=version) == {"sessions": {}}
    await _call(alice, "GET", f"/room_keys/keys/{ROOM}/nope", status=404, version=version)

    before = (await _call(alice, "GET", "/room_keys/version"))["etag"]
    assert (await _call(alice, "DELETE", f"/room_keys/keys/{ROOM}/s1", version=version))["count"] == 3
    assert (await _call(alice, "DELETE", f"/room_keys/keys/{room2}", version=version))["count"] == 1
    after = await _call(alice, "GET", "/room_keys/version")
    assert after["count"] == 1 and after["etag"] != before
    assert (await _call(alice, "DELETE", "/room_keys/keys", version=version))["count"] == 0


@pytest.mark.parametrize(
    "stored, uploaded, kept",
    [
        (_key(verified=False, data="old"), _key(verified=True, index=9, data="new"), "new"),
        (_key(verified=True, data="old"), _key(verified=False, data="new"), "old"),
        (_key(index=5, data="old"), _key(index=2, forwarded=3, data="new"), "new"),
        (_key(index=2, data="old"), _key(index=5, data="new"), "old"),
        (_key(forwarded=2, data="old"), _key(forwarded=1, data="new"), "new"),
        (_key(forwarded=1, data="old"), _key(forwarded=1, data="new"), "old"),
    ],
    ids=["verified-wins", "unverified-loses", "lower-index-wins", "higher-index-loses",
         "fewer-forwards-wins", "tie-keeps-stored"],
)
async def test_better_key_wins(srv: RunningServer, stored: dict, uploaded: dict, kept: str) -> None:
    alice = await _user(srv)
    version = await _new_backup(alice)
    await _call(alice, "PUT", f"/room_keys/keys/{ROOM}/s", stored, version=version)
    etag = (await _call(alice, "GET", "/room_keys/version"))["etag"]
    result = await _call(alice, "PUT", f"/room_keys/keys/{ROOM}/s", uploaded, version=version)
    got = await _call(alice, "GET", f"/room_keys/keys/{ROOM}/s", version=version)
    assert got["session_data"]["ciphertext"] == kept
    # The etag moves exactly when the stored key changed.
    assert (result["etag"] != etag) == (kept == "new")


async def test_only_the_current_backup_takes_keys(srv: RunningServer) -> None:
    alice = await _user(srv)
    await _call(alice, "PUT", f"/room_keys/keys/{ROOM}/s", _key(), status=404, version="1")
    old = await _new_backup(alice)
    current = await _new_backup(alice)
    body = await _call(alice, "PUT", f"/room_keys/keys/{ROOM}/s", _key(), status=403, version=old)
    assert body["errcode"] == "M_WRONG_ROOM_KEYS_VERSION"
    assert body["current_version"] == current
    # Reading and deleting an older backup still work.
    assert await _call(alice, "GET", "/room_keys/keys", version=old) == {"rooms": {}}
    await _call(alice, "DELETE", f"/room_keys/version/{old}")
    await _call(alice, "GET", "/room_keys/keys", status=404, version=old)


@pytest.mark.parametrize(
    "method, path, body, params, errcode",
    [
        ("POST", "/room_keys/version", {"auth_data": {}}, {}, "M_MISSING_PARAM"),
        ("POST", "/room_keys/version", {"algorithm": ALGORITHM}, {}, "M_MISSING_PARAM"),
        ("PUT", f"/room_keys/keys/{ROOM}/s", {**_key(), "session_data": None}, {"version": "1"}, "M_MISSING_PARAM"),
        ("GET", "/room_keys/keys", None, {}, "M_MISSING_PARAM"),
        ("PUT", "/room_keys/keys", {"rooms": []}, {"version": "1"}, "M_BAD_JSON"),
        ("PUT", "/room_keys/keys", {"rooms": {ROOM: {}}}, {"version": "1"}, "M_BAD_JSON"),
        ("PUT", f"/room_keys/keys/{ROOM}/s", {**_key(), "is_verified": 1}, {"version": "1"}, "M_BAD_JSON"),
        ("PUT", f"/room_keys/keys/{ROOM}/s", {"first_message_index": 0}, {"version": "1"}, "M_BAD_JSON"),
    ],
)
async def test_bad_requests(srv: RunningServer, method: str, path: str, body: Any, params: dict, errcode: str) -> None:
    alice = await _user(srv)
    await _new_backup(alice)
    assert (await _call(alice, method, path, body, status=400, **params))["errcode"] == errcode


async def test_algorithm_data_is_opaque(srv: RunningServer) -> None:
    """auth_data and session_data belong to the algorithm: stored and served as sent, whatever
    their JSON type (Synapse does the same; SyTest sends strings)."""
    alice = await _user(srv)
    created = await _call(alice, "POST", "/room_keys/version", {"algorithm": ALGORITHM, "auth_data": "opaque"})
    version = str(created["version"])
    assert (await _call(alice, "GET", "/room_keys/version"))["auth_data"] == "opaque"
    await _call(alice, "PUT", f"/room_keys/version/{version}", {"algorithm": ALGORITHM, "auth_data": "other"})
    assert (await _call(alice, "GET", f"/room_keys/version/{version}"))["auth_data"] == "other"
    await _call(alice, "PUT", f"/room_keys/keys/{ROOM}/s", {**_key(), "session_data": "blob"}, version=version)
    got = await _call(alice, "GET", f"/room_keys/keys/{ROOM}/s", version=version)
    assert got["session_data"] == "blob"


async def test_needs_access_token(srv: RunningServer) -> None:
    resp = await srv.client.get("/_matrix/client/v3/room_keys/version")
    assert resp.status_code == 401


async def test_session_id_with_a_slash(srv: RunningServer) -> None:
    """Megolm session ids are base64 and may hold '/': clients send it as %2F."""
    alice = await _user(srv)
    version = await _new_backup(alice)
    await _call(alice, "PUT", f"/room_keys/keys/{ROOM}/a%2Fb+c", _key(data="slash"), version=version)
    got = await _call(alice, "GET", "/room_keys/keys", version=version)
    assert list(got["rooms"][ROOM]["sessions"]) == ["a/b+c"]
    assert (await _call(alice, "GET", f"/room_keys/keys/{ROOM}/a%2Fb+c", version=version))["session_data"] == {"ciphertext": "slash"}
