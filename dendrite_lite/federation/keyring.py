"""The keyring: every server's verify keys, ours included (server-server-api.md §Retrieving
server keys).

A remote key is looked up in memory, then in SQLite, then fetched: directly from the server's
`/_matrix/key/v2/server`, and if that fails or lacks the key, from each configured notary's
`/_matrix/key/v2/query`. Every response must be signed by the server it describes (and a
notary's answer also by the notary, whose own key is fetched directly), name that server, and
is cached until its `valid_until_ts` (capped at 7 days). Concurrent lookups of one server share
one fetch, and a server is not refetched more than once per `REFETCH_INTERVAL_MS`.

`Keyring` is both a `KeyFetcher` (async `get_key`, used by X-Matrix verification) and a
synchronous `crypto.signing.KeyStore` answering from memory: event verification first awaits
`fetch_keys(key_requests_for_event(...))`, then calls `verify_event_signatures(..., keyring)`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dendrite_lite.crypto.canonical import encode_base64, encode_canonical_json
from dendrite_lite.crypto.keys import ServerKey
from dendrite_lite.crypto.signing import (
    MAX_KEY_VALIDITY_MS,
    ServerVerifyKey,
    SignatureError,
    decode_verify_key,
    effective_valid_until_ts,
    sign_json,
    verify_json_signature,
)
from dendrite_lite.events.signing import KeyRequest
from dendrite_lite.federation.client import FederationClient, FederationError
from dendrite_lite.storage import Storage
from dendrite_lite.storage import server_keys as db_keys

__all__ = ["Keyring", "KeyResponseError", "parse_key_response", "own_key_response", "REFETCH_INTERVAL_MS"]

log = logging.getLogger(__name__)

# A key unknown even after a fetch is not fetched again for this long: an attacker sending
# requests signed with made-up key ids must not turn us into a fetch amplifier.
REFETCH_INTERVAL_MS = 30_000
KEY_RESPONSE_MAX_BYTES = 4 * 1024 * 1024
KEY_FETCH_TIMEOUT_S = 20.0


class KeyResponseError(Exception):
    """A key response is malformed or not properly signed."""


@dataclass(frozen=True, slots=True)
class _Parsed:
    server_name: str
    keys: tuple[ServerVerifyKey, ...]  # validity already capped
    valid_until_ts: int  # as published


def own_key_response(server_name: str, key: ServerKey, now_ms: int) -> dict[str, Any]:
    """Our signed /_matrix/key/v2/server answer (served there and by our notary).

    Peers use the lesser of valid_until_ts and now + 7 days, so publishing longer is pointless;
    publishing the full 7 days means fewer refetches, at the cost that caches trust a
    rotated-out key for up to a week (old_verify_keys handles rotation)."""
    body = {
        "server_name": server_name,
        "verify_keys": {key.key_id: {"key": key.verify_key_base64}},
        "old_verify_keys": {},
        "valid_until_ts": now_ms + MAX_KEY_VALIDITY_MS,
    }
    return sign_json(body, server_name, key)


def parse_key_response(
    response: Any, expected_server: str, fetched_at_ms: int
) -> _Parsed:
    """Check a key response (shape, server_name, self-signature) and return its keys.

    The response must be signed by `expected_server` with at least one key it lists in
    `verify_keys`, and every such signature must verify.
    """
    if not isinstance(response, dict):
        raise KeyResponseError("key response is not a JSON object")
    if response.get("server_name") != expected_server:
        raise KeyResponseError(
            f"key response is for {response.get('server_name')!r}, not {expected_server!r}"
        )
    valid_until = response.get("valid_until_ts")
    if not isinstance(valid_until, int) or isinstance(valid_until, bool):
        raise KeyResponseError("key response has no integer valid_until_ts")
    verify_keys = response.get("verify_keys")
    old_keys = response.get("old_verify_keys", {})
    if not isinstance(verify_keys, dict) or not isinstance(old_keys, dict):
        raise KeyResponseError("verify_keys/old_verify_keys are not objects")
    capped = effective_valid_until_ts(valid_until, fetched_at_ms)
    keys: list[ServerVerifyKey] = []
    current: dict[str, ServerVerifyKey] = {}
    try:
        for key_id, entry in verify_keys.items():
            b64 = entry.get("key") if isinstance(entry, dict) else None
            if not isinstance(b64, str):
                raise KeyResponseError(f"verify key {key_id} has no key")
            vk = ServerVerifyKey(expected_server, key_id, decode_verify_key(key_id, b64), capped)
            current[key_id] = vk
            keys.append(vk)
        for key_id, entry in old_keys.items():
            b64 = entry.get("key") if isinstance(entry, dict) else None
            expired = entry.get("expired_ts") if isinstance(entry, dict) else None
            if not isinstance(b64, str) or not isinstance(expired, int):
                raise KeyResponseError(f"old verify key {key_id} lacks key or expired_ts")
            keys.append(
                ServerVerifyKey(expected_server, key_id, decode_verify_key(key_id, b64), None, expired)
            )
    except ValueError as e:
        if isinstance(e, KeyResponseError):
            raise
        raise KeyResponseError(str(e)) from None
    sigs = response.get("signatures")
    own = sigs.get(expected_server) if isinstance(sigs, dict) else None
    checked = [k for k in (own or {}) if k in current]
    if not checked:
        raise KeyResponseError(f"key response is not signed by {expected_server} with a listed key")
    for key_id in checked:
        try:
            verify_json_signature(response, expected_server, key_id, current[key_id].verify_key)
        except SignatureError as e:
            raise KeyResponseError(str(e)) from None
    return _Parsed(expected_server, tuple(keys), valid_until)


class Keyring:
    def __init__(
        self,
        server_name: str,
        key: ServerKey,
        storage: Storage,
        client: FederationClient | None,
        notaries: Iterable[str] = (),
        *,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.server_name = server_name
        self.key = key
        self.storage = storage
        self.client = client
        self.notaries = tuple(n for n in notaries if n != server_name)
        self.clock_ms = clock_ms
        self._memory: dict[tuple[str, str], ServerVerifyKey] = {}
        self._loaded: set[str] = set()  # servers whose stored keys are in memory
        self._inflight: dict[str, asyncio.Future[None]] = {}
        self._last_fetch: dict[str, int] = {}

    # --- KeyStore (synchronous, memory only) ---------------------------------------------------

    def get_verify_key(
        self, server_name: str, key_id: str, minimum_valid_until_ts: int
    ) -> ServerVerifyKey | None:
        if server_name == self.server_name and key_id == self.key.key_id:
            return self._own_key()
        return self._memory.get((server_name, key_id))

    def _own_key(self) -> ServerVerifyKey:
        valid = self.clock_ms() + MAX_KEY_VALIDITY_MS
        return ServerVerifyKey(self.server_name, self.key.key_id, self.key.verify_key, valid)

    # --- KeyFetcher ------------------------------------------------------------------------------

    async def get_key(
        self, server_name: str, key_id: str, minimum_valid_until_ts: int
    ) -> ServerVerifyKey | None:
        """The key, from memory, SQLite or the network. It may still be invalid for
        `minimum_valid_until_ts` if no fresher one could be found: callers check validity."""
        if server_name == self.server_name:
            return self._own_key() if key_id == self.key.key_id else None
        await self._load(server_name)
        key = self._memory.get((server_name, key_id))
        if key is not None and _fresh_enough(key, minimum_valid_until_ts):
            return key
        await self._fetch(server_name, {key_id: minimum_valid_until_ts})
        return self._memory.get((server_name, key_id))

    async def fetch_keys(self, requests: Iterable[KeyRequest]) -> None:
        """Make sure every requested key is in memory (fetching concurrently per server), so
        the synchronous KeyStore view can answer."""
        by_server: dict[str, dict[str, int]] = {}
        for r in requests:
            wanted = by_server.setdefault(r.server_name, {})
            wanted[r.key_id] = max(wanted.get(r.key_id, 0), r.minimum_valid_until_ts)
        await asyncio.gather(*(self._ensure(s, w) for s, w in by_server.items()))

    async def _ensure(self, server_name: str, wanted: dict[str, int]) -> None:
        if server_name == self.server_name:
            return
        await self._load(server_name)
        missing = {
            k: ts for k, ts in wanted.items()
            if not _fresh_enough(self._memory.get((server_name, k)), ts)
        }
        if missing:
            await self._fetch(server_name, missing)

    async def _load(self, server_name: str) -> None:
        if server_name in self._loaded:
            return
        stored = await self.storage.db.read(lambda c: db_keys.select_server_keys(c, server_name))
        for s in stored:
            try:
                vk = decode_verify_key(s.key_id, s.verify_key)
            except ValueError:
                continue
            self._remember(ServerVerifyKey(server_name, s.key_id, vk, s.valid_until_ts, s.expired_ts))
        self._loaded.add(server_name)

    def _remember(self, key: ServerVerifyKey) -> None:
        old = self._memory.get((key.server_name, key.key_id))
        if old is not None and old.verify_key.encode() == key.verify_key.encode():
            # The same merge rule as storage: never shorten a known validity; old stays old.
            valid = key.valid_until_ts
            if valid is None or (old.valid_until_ts is not None and old.valid_until_ts > valid):
                valid = old.valid_until_ts
            key = ServerVerifyKey(
                key.server_name, key.key_id, key.verify_key, valid, key.expired_ts or old.expired_ts
            )
        self._memory[(key.server_name, key.key_id)] = key

    # --- Fetching ------------------------------------------------------------------------------

    async def _fetch(
        self, server_name: str, wanted: Mapping[str, int], *, direct_only: bool = False,
        throttled: bool = True,
    ) -> None:
        """One fetch per server at a time; later callers wait for the running one.
        `throttled=False` (notary queries) skips the refetch interval, not the one-at-a-time."""
        running = self._inflight.get(server_name)
        if running is not None:
            await asyncio.shield(running)
            return
        now = self.clock_ms()
        if throttled and now - self._last_fetch.get(server_name, -REFETCH_INTERVAL_MS) < REFETCH_INTERVAL_MS:
            return
        self._last_fetch[server_name] = now
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._inflight[server_name] = fut
        try:
            if direct_only:
                await self._fetch_direct(server_name)
            else:
                await self._fetch_now(server_name, wanted)
        finally:
            del self._inflight[server_name]
            fut.set_result(None)

    async def _fetch_now(self, server_name: str, wanted: Mapping[str, int]) -> None:
        if self.client is None:
            return
        if await self._fetch_direct(server_name) and self._satisfied(server_name, wanted):
            return
        for notary in self.notaries:
            if notary == server_name:
                continue
            try:
                await self._fetch_via_notary(notary, server_name, wanted)
            except (FederationError, KeyResponseError) as e:
                log.info("key query for %s via notary %s failed: %s", server_name, notary, e)
                continue
            if self._satisfied(server_name, wanted):
                return

    def _satisfied(self, server_name: str, wanted: Mapping[str, int]) -> bool:
        return all(_fresh_enough(self._memory.get((server_name, k)), ts) for k, ts in wanted.items())

    async def _fetch_direct(self, server_name: str) -> bool:
        if self.client is None:
            return False
        try:
            response = await self.client.get_json(
                server_name, "/_matrix/key/v2/server", sign=False,
                timeout_s=KEY_FETCH_TIMEOUT_S, max_response_bytes=KEY_RESPONSE_MAX_BYTES,
            )
            now = self.clock_ms()
            parsed = parse_key_response(response, server_name, now)
        except (FederationError, KeyResponseError) as e:
            log.info("fetching the keys of %s directly failed: %s", server_name, e)
            return False
        await self._store(parsed, server_name, now, raw=response)
        return True

    async def _fetch_via_notary(
        self, notary: str, server_name: str, wanted: Mapping[str, int]
    ) -> None:
        assert self.client is not None
        body = {
            "server_keys": {
                server_name: {k: {"minimum_valid_until_ts": ts} for k, ts in wanted.items()}
            }
        }
        answer = await self.client.post_json(
            notary, "/_matrix/key/v2/query", body,
            timeout_s=KEY_FETCH_TIMEOUT_S, max_response_bytes=KEY_RESPONSE_MAX_BYTES,
        )
        results = answer.get("server_keys") if isinstance(answer, dict) else None
        if not isinstance(results, list):
            raise KeyResponseError(f"notary {notary} answered without a server_keys list")
        now = self.clock_ms()
        for response in results:
            if not isinstance(response, dict) or response.get("server_name") != server_name:
                continue  # a notary may add other servers' keys; we asked about one
            await self._check_notary_signature(notary, response)
            parsed = parse_key_response(response, server_name, now)
            await self._store(parsed, notary, now, raw=None)

    async def _check_notary_signature(self, notary: str, response: Mapping[str, Any]) -> None:
        sigs = response.get("signatures")
        entry = sigs.get(notary) if isinstance(sigs, dict) else None
        key_ids = sorted(k for k in (entry or {}) if isinstance(k, str) and k.startswith("ed25519:"))
        if not key_ids:
            raise KeyResponseError(f"notary response is not signed by {notary}")
        for key_id in key_ids:
            # The notary's own key comes from the notary directly, never from another notary.
            await self._load(notary)
            key = self._memory.get((notary, key_id))
            if key is None or not _fresh_enough(key, self.clock_ms()):
                await self._fetch(notary, {key_id: self.clock_ms()}, direct_only=True)
                key = self._memory.get((notary, key_id))
            if key is None:
                continue
            try:
                verify_json_signature(response, notary, key_id, key.verify_key)
            except SignatureError as e:
                raise KeyResponseError(f"notary {notary}: {e}") from None
            return
        raise KeyResponseError(f"no known key of notary {notary} signed the response")

    async def _store(self, parsed: _Parsed, source: str, now: int, *, raw: dict[str, Any] | None) -> None:
        stored = [
            db_keys.StoredKey(
                k.server_name, k.key_id, _b64(k), k.valid_until_ts, k.expired_ts, now, source
            )
            for k in parsed.keys
        ]
        raw_json = encode_canonical_json(raw).decode() if raw is not None else None
        current_ids = [k.key_id for k in parsed.keys if k.expired_ts is None]

        async def write(conn: Any) -> None:
            await db_keys.upsert_server_keys(conn, stored)
            if raw_json is not None:
                await db_keys.upsert_key_responses(
                    conn, parsed.server_name, current_ids, raw_json, parsed.valid_until_ts, now
                )

        await self.storage.db.write(write)
        for k in parsed.keys:
            self._remember(k)

    # --- Notary --------------------------------------------------------------------------------

    async def notary_query(
        self,
        queries: Mapping[str, Mapping[str, int | None]],
        minimum_valid_until_ts: int | None = None,
    ) -> list[dict[str, Any]]:
        """Answer /_matrix/key/v2/query: for each server, its own signed key responses (fetched
        directly, cached or fresh), each also signed by us. An empty key map means every key;
        a `None` minimum means `minimum_valid_until_ts`, else now. Servers we know nothing
        about (unreachable, never cached) are left out."""
        now = self.clock_ms()
        default = minimum_valid_until_ts if minimum_valid_until_ts is not None else now
        out: list[dict[str, Any]] = []
        for server_name, key_map in queries.items():
            if server_name == self.server_name:
                out.append(own_key_response(self.server_name, self.key, now))
                continue
            wanted = {k: (ts if ts is not None else default) for k, ts in key_map.items()}
            need = max(wanted.values(), default=default)
            for response in await self._responses_for(server_name, wanted, need):
                out.append(sign_json(response, self.server_name, self.key))
        return out

    async def _responses_for(
        self, server_name: str, wanted: Mapping[str, int], need: int
    ) -> list[dict[str, Any]]:
        cached = await self.storage.db.read(lambda c: db_keys.select_key_responses(c, server_name))
        fresh = [r for r in cached if r.valid_until_ts >= need and (not wanted or r.key_id in wanted)]
        if not fresh or (wanted and {r.key_id for r in fresh} != set(wanted)):
            # A notary answers from what the server itself published, never from other notaries.
            # Unthrottled, as Synapse's notary: the querier asks for a validity the cache lacks,
            # and an answer from 30 s ago would hide a rotated or re-published key. Each query
            # costs at most one fetch per server it names (bounded per request by the handler).
            await self._fetch(server_name, wanted, direct_only=True, throttled=False)
            cached = await self.storage.db.read(lambda c: db_keys.select_key_responses(c, server_name))
        chosen = [r for r in cached if not wanted or r.key_id in wanted]
        seen: set[str] = set()
        responses: list[dict[str, Any]] = []
        for r in chosen:
            if r.response_json not in seen:
                seen.add(r.response_json)
                responses.append(json.loads(r.response_json))
        return responses


def _fresh_enough(key: ServerVerifyKey | None, minimum_valid_until_ts: int) -> bool:
    if key is None:
        return False
    if key.expired_ts is not None:
        return True  # an old key's record is final: refetching cannot make it newer
    return key.valid_until_ts is not None and key.valid_until_ts >= minimum_valid_until_ts


def _b64(key: ServerVerifyKey) -> str:
    return encode_base64(key.verify_key.encode())
