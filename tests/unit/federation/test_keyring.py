"""The keyring: direct and notary key fetching, verification, caching in SQLite, coalescing,
and answering notary queries. Remote servers are fakes behind httpx.MockTransport."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from dendrite_lite.crypto.keys import ServerKey, new_server_key
from dendrite_lite.crypto.signing import MAX_KEY_VALIDITY_MS, sign_json, verify_json_signature
from dendrite_lite.delegation.discovery import ServerDiscovery
from dendrite_lite.events.signing import KeyRequest
from dendrite_lite.federation.client import FederationClient, make_ssl_context
from dendrite_lite.federation.keyring import (
    REFETCH_INTERVAL_MS,
    Keyring,
    KeyResponseError,
    parse_key_response,
)
from dendrite_lite.storage import Storage
from dendrite_lite.outbound_http import new_client

US = "us.test:1"
REMOTE = "remote.test:1"
NOTARY = "notary.test:1"
T0 = 1_700_000_000_000
HOUR = 3600_000


class World:
    """Fake servers: each host answers /_matrix/key/v2/server with its key, notaries also
    /_matrix/key/v2/query. Tests edit `responses` to publish something else."""

    def __init__(self) -> None:
        self.now = T0
        self.keys: dict[str, ServerKey] = {REMOTE: new_server_key("r1"), NOTARY: new_server_key("n1")}
        self.down: set[str] = set()
        self.responses: dict[str, Any] = {}  # server -> forced /key/v2/server body
        self.notary_answer: Any = None  # forced /key/v2/query body
        self.requests: list[tuple[str, str]] = []

    def key_response(self, server: str, valid_for: int = 7 * 24 * HOUR, old: dict | None = None) -> dict:
        key = self.keys[server]
        body = {
            "server_name": server,
            "verify_keys": {key.key_id: {"key": key.verify_key_base64}},
            "old_verify_keys": old or {},
            "valid_until_ts": self.now + valid_for,
        }
        return sign_json(body, server, key)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        host = request.headers["host"]
        self.requests.append((host, request.url.path))
        await asyncio.sleep(0.01)  # let concurrent callers pile up
        if host in self.down:
            raise httpx.ConnectError("down", request=request)
        if request.url.path == "/_matrix/key/v2/server":
            return httpx.Response(200, json=self.responses.get(host) or self.key_response(host))
        if request.url.path == "/_matrix/key/v2/query" and host == NOTARY:
            if self.notary_answer is not None:
                return httpx.Response(200, json=self.notary_answer)
            asked = json.loads(request.content)["server_keys"]
            out = [sign_json(self.key_response(s), NOTARY, self.keys[NOTARY]) for s in asked]
            return httpx.Response(200, json={"server_keys": out})
        return httpx.Response(404, json={"errcode": "M_UNRECOGNIZED"})


@pytest.fixture
async def storage(tmp_path: Path):
    s = await Storage.open(tmp_path / "homeserver.db", readers=2)
    yield s
    await s.close()


@pytest.fixture
def world() -> World:
    return World()


OUR_KEY = new_server_key("us1")


def keyring(storage: Storage, world: World, notaries: tuple[str, ...] = ()) -> Keyring:
    transport = httpx.MockTransport(world.handle)
    discovery = ServerDiscovery(new_client(transport), srv=None)  # type: ignore[arg-type]
    client = FederationClient(US, OUR_KEY, discovery, make_ssl_context(True), transport)
    return Keyring(US, OUR_KEY, storage, client, notaries, clock_ms=lambda: world.now)


def rid(world: World, server: str = REMOTE) -> str:
    return world.keys[server].key_id


async def test_direct_fetch_verifies_caches_and_survives_restart(storage: Storage, world: World) -> None:
    kr = keyring(storage, world)
    key = await kr.get_key(REMOTE, rid(world), T0)
    assert key is not None
    assert key.verify_key.encode() == world.keys[REMOTE].verify_key.encode()
    assert key.valid_until_ts == T0 + 7 * 24 * HOUR and key.expired_ts is None
    assert world.requests == [(REMOTE, "/_matrix/key/v2/server")]
    # The synchronous KeyStore view now answers from memory.
    assert kr.get_verify_key(REMOTE, rid(world), 0) == key
    # A new keyring (a restart) with no network finds it in SQLite.
    offline = Keyring(US, OUR_KEY, storage, None, clock_ms=lambda: world.now)
    assert offline.get_verify_key(REMOTE, rid(world), 0) is None
    assert await offline.get_key(REMOTE, rid(world), T0) == key


async def test_validity_is_capped_at_seven_days(storage: Storage, world: World) -> None:
    world.responses[REMOTE] = world.key_response(REMOTE, valid_for=365 * 24 * HOUR)
    key = await keyring(storage, world).get_key(REMOTE, rid(world), T0)
    assert key is not None and key.valid_until_ts == T0 + MAX_KEY_VALIDITY_MS


async def test_cached_until_valid_until_then_refetched(storage: Storage, world: World) -> None:
    world.responses[REMOTE] = world.key_response(REMOTE, valid_for=HOUR)
    kr = keyring(storage, world)
    await kr.get_key(REMOTE, rid(world), T0)
    world.now += HOUR // 2
    await kr.get_key(REMOTE, rid(world), world.now)
    assert len(world.requests) == 1
    world.now += HOUR
    world.responses.pop(REMOTE)
    key = await kr.get_key(REMOTE, rid(world), world.now)
    assert len(world.requests) == 2
    assert key is not None and key.valid_until_ts == world.now + MAX_KEY_VALIDITY_MS


async def test_unknown_key_is_not_refetched_within_the_interval(storage: Storage, world: World) -> None:
    kr = keyring(storage, world)
    assert await kr.get_key(REMOTE, "ed25519:nope", T0) is None
    assert await kr.get_key(REMOTE, "ed25519:nope2", T0) is None
    assert len(world.requests) == 1
    world.now += REFETCH_INTERVAL_MS
    assert await kr.get_key(REMOTE, "ed25519:nope", T0) is None
    assert len(world.requests) == 2


async def test_concurrent_fetches_are_coalesced(storage: Storage, world: World) -> None:
    kr = keyring(storage, world)
    keys = await asyncio.gather(*(kr.get_key(REMOTE, rid(world), T0) for _ in range(20)))
    assert all(k is not None and k == keys[0] for k in keys)
    assert world.requests == [(REMOTE, "/_matrix/key/v2/server")]


async def test_old_verify_keys_are_kept_with_expired_ts(storage: Storage, world: World) -> None:
    retired = new_server_key("old")
    old = {retired.key_id: {"key": retired.verify_key_base64, "expired_ts": T0 - HOUR}}
    world.responses[REMOTE] = world.key_response(REMOTE, old=old)
    kr = keyring(storage, world)
    key = await kr.get_key(REMOTE, retired.key_id, T0 - 2 * HOUR)
    assert key is not None and key.expired_ts == T0 - HOUR and key.valid_until_ts is None
    assert key.verify_key.encode() == retired.verify_key.encode()
    # A key seen as current earlier and reported old later keeps both facts.
    current = rid(world)
    world.now += REFETCH_INTERVAL_MS
    rotated = new_server_key("r2")
    world.keys[REMOTE], previous = rotated, world.keys[REMOTE]
    world.responses[REMOTE] = world.key_response(
        REMOTE, old={current: {"key": previous.verify_key_base64, "expired_ts": world.now}}
    )
    assert await kr.get_key(REMOTE, rotated.key_id, world.now) is not None
    restarted = Keyring(US, OUR_KEY, storage, None, clock_ms=lambda: world.now)
    was_current = await restarted.get_key(REMOTE, current, 0)
    assert was_current is not None
    assert (was_current.valid_until_ts, was_current.expired_ts) == (T0 + 7 * 24 * HOUR, world.now)
    assert kr.get_verify_key(REMOTE, current, 0) == was_current


async def test_fetch_keys_prefetches_for_event_verification(storage: Storage, world: World) -> None:
    kr = keyring(storage, world, notaries=(NOTARY,))
    await kr.fetch_keys([
        KeyRequest(REMOTE, rid(world), T0),
        KeyRequest(NOTARY, rid(world, NOTARY), T0),
        KeyRequest(US, OUR_KEY.key_id, T0),
    ])
    assert kr.get_verify_key(REMOTE, rid(world), T0) is not None
    assert kr.get_verify_key(NOTARY, rid(world, NOTARY), T0) is not None
    assert kr.get_verify_key(US, OUR_KEY.key_id, T0).verify_key.encode() == OUR_KEY.verify_key.encode()
    assert sorted(world.requests) == [(NOTARY, "/_matrix/key/v2/server"), (REMOTE, "/_matrix/key/v2/server")]


# --- Bad direct responses -------------------------------------------------------------------

def tampered(world: World) -> dict:
    body = world.key_response(REMOTE)
    body["valid_until_ts"] += 1
    return body


def signed_by_other(world: World) -> dict:
    body = world.key_response(REMOTE)
    other = new_server_key("r1")
    body.pop("signatures")
    return sign_json(body, REMOTE, other)


def unsigned(world: World) -> dict:
    body = world.key_response(REMOTE)
    body.pop("signatures")
    return body


def wrong_name(world: World) -> dict:
    body = world.key_response(REMOTE)
    body.pop("signatures")
    body["server_name"] = "evil.test"
    return sign_json(body, "evil.test", world.keys[REMOTE])


def signed_with_unlisted_key(world: World) -> dict:
    body = world.key_response(REMOTE)
    body.pop("signatures")
    return sign_json(body, REMOTE, new_server_key("other"))


@pytest.mark.parametrize("bad", [tampered, signed_by_other, unsigned, wrong_name, signed_with_unlisted_key])
async def test_bad_direct_responses_are_rejected(storage: Storage, world: World, bad) -> None:
    world.responses[REMOTE] = bad(world)
    assert await keyring(storage, world).get_key(REMOTE, rid(world), T0) is None
    restarted = Keyring(US, OUR_KEY, storage, None, clock_ms=lambda: world.now)
    assert await restarted.get_key(REMOTE, rid(world), T0) is None  # nothing stored


@pytest.mark.parametrize(
    "response, message",
    [
        ([], "not a JSON object"),
        ({"server_name": REMOTE, "verify_keys": {}}, "valid_until_ts"),
        ({"server_name": REMOTE, "verify_keys": [], "valid_until_ts": 1}, "not objects"),
        ({"server_name": REMOTE, "verify_keys": {"ed25519:a": {}}, "valid_until_ts": 1}, "has no key"),
        ({"server_name": REMOTE, "verify_keys": {"ed25519:a": {"key": "AAAA"}}, "valid_until_ts": 1}, "32 bytes"),
        ({"server_name": REMOTE, "verify_keys": {}, "old_verify_keys": {"ed25519:o": {"key": "x"}},
          "valid_until_ts": 1}, "expired_ts"),
    ],
)
def test_parse_key_response_shape_errors(response: Any, message: str) -> None:
    with pytest.raises(KeyResponseError, match=message):
        parse_key_response(response, REMOTE, T0)


# --- Notaries -----------------------------------------------------------------------------------

async def test_notary_used_when_server_is_down(storage: Storage, world: World) -> None:
    world.down.add(REMOTE)
    kr = keyring(storage, world, notaries=(NOTARY,))
    key = await kr.get_key(REMOTE, rid(world), T0)
    assert key is not None and key.verify_key.encode() == world.keys[REMOTE].verify_key.encode()
    assert world.requests == [
        (REMOTE, "/_matrix/key/v2/server"),
        (NOTARY, "/_matrix/key/v2/query"),
        (NOTARY, "/_matrix/key/v2/server"),  # the notary's own key, to check its signature
    ]


def notary_signed_by_stranger(world: World) -> dict:
    return {"server_keys": [sign_json(world.key_response(REMOTE), NOTARY, new_server_key("n1"))]}


def notary_unsigned(world: World) -> dict:
    return {"server_keys": [world.key_response(REMOTE)]}


def notary_relays_forgery(world: World) -> dict:
    forged = world.key_response(REMOTE)
    forged["verify_keys"] = {rid(world): {"key": new_server_key("x").verify_key_base64}}
    return {"server_keys": [sign_json(forged, NOTARY, world.keys[NOTARY])]}


def notary_not_a_list(world: World) -> dict:
    return {"server_keys": {"nope": 1}}


@pytest.mark.parametrize(
    "answer", [notary_signed_by_stranger, notary_unsigned, notary_relays_forgery, notary_not_a_list]
)
async def test_bad_notary_responses_are_rejected(storage: Storage, world: World, answer) -> None:
    world.down.add(REMOTE)
    world.notary_answer = answer(world)
    kr = keyring(storage, world, notaries=(NOTARY,))
    assert await kr.get_key(REMOTE, rid(world), T0) is None


async def test_notary_query_answers_signed_by_origin_and_us(storage: Storage, world: World) -> None:
    kr = keyring(storage, world)
    answer = await kr.notary_query({REMOTE: {}, US: {}})
    assert [r["server_name"] for r in answer] == [REMOTE, US]
    remote, ours = answer
    verify_json_signature(remote, REMOTE, rid(world), world.keys[REMOTE].verify_key)
    verify_json_signature(remote, US, OUR_KEY.key_id, OUR_KEY.verify_key)
    verify_json_signature(ours, US, OUR_KEY.key_id, OUR_KEY.verify_key)
    # Cached: a second query within validity does not refetch, even with the server down.
    world.down.add(REMOTE)
    again = await kr.notary_query({REMOTE: {rid(world): T0 + HOUR}})
    assert [r["verify_keys"] for r in again] == [remote["verify_keys"]]
    assert len(world.requests) == 1


async def test_notary_query_refetches_when_cache_too_old(storage: Storage, world: World) -> None:
    world.responses[REMOTE] = world.key_response(REMOTE, valid_for=HOUR)
    kr = keyring(storage, world)
    first = await kr.notary_query({REMOTE: {}})
    world.now += REFETCH_INTERVAL_MS
    world.responses.pop(REMOTE)
    second = await kr.notary_query({REMOTE: {rid(world): T0 + 2 * HOUR}})
    assert len(world.requests) == 2
    assert second[0]["valid_until_ts"] > first[0]["valid_until_ts"]


async def test_notary_query_refetches_at_once_and_keeps_expired_keys(storage: Storage, world: World) -> None:
    """A notary asked for a validity its cache lacks fetches again at once (SyTest "Key notary
    server should return an expired key if it can't find any others"); when the origin then
    fails, or forgets the key, the cached (even expired) response is still served."""
    expired = world.key_response(REMOTE, valid_for=-24 * HOUR)
    world.responses[REMOTE] = expired
    kr = keyring(storage, world)
    first = await kr.notary_query({REMOTE: {rid(world): None}})
    assert [r["valid_until_ts"] for r in first] == [expired["valid_until_ts"]]
    await kr.notary_query({REMOTE: {rid(world): expired["valid_until_ts"] + 1000}})
    assert len(world.requests) == 2
    world.down.add(REMOTE)
    third = await kr.notary_query({REMOTE: {rid(world): expired["valid_until_ts"] + 1000}})
    assert len(world.requests) == 3
    assert [r["verify_keys"] for r in third] == [expired["verify_keys"]]
    # The origin now publishes another key only: asking for the first still answers with it.
    world.down.discard(REMOTE)
    old_id = rid(world)
    world.keys[REMOTE] = new_server_key("k2")
    world.responses[REMOTE] = world.key_response(REMOTE)
    await kr.notary_query({REMOTE: {old_id: world.now}})
    kept = await kr.notary_query({REMOTE: {old_id: expired["valid_until_ts"]}})
    assert [list(r["verify_keys"]) for r in kept] == [[old_id]]


async def test_notary_query_unknown_unreachable_server_is_left_out(storage: Storage, world: World) -> None:
    world.down.add("gone.test:1")
    world.keys["gone.test:1"] = new_server_key("g")
    kr = keyring(storage, world)
    assert await kr.notary_query({"gone.test:1": {}}) == []
    # An unreachable server with a cached (even stale) response: the cache is served.
    await kr.notary_query({REMOTE: {}})
    world.down.add(REMOTE)
    world.now += 30 * 24 * HOUR
    stale = await kr.notary_query({REMOTE: {}})
    assert [r["server_name"] for r in stale] == [REMOTE]


async def test_keyring_never_asks_itself_or_notary_for_own_keys(storage: Storage, world: World) -> None:
    kr = keyring(storage, world, notaries=(US, NOTARY))
    assert kr.notaries == (NOTARY,)
    key = await kr.get_key(US, OUR_KEY.key_id, T0)
    assert key is not None and key.valid_until_ts == T0 + MAX_KEY_VALIDITY_MS
    assert await kr.get_key(US, "ed25519:other", T0) is None
    assert world.requests == []
