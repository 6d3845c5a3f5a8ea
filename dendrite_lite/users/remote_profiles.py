"""Profiles of users on other servers (client-server-api §Profiles, "Server behaviour"; the
federation query in data/api/server-server/query.yaml, GET /query/profile).

- The user's own server is asked (GET /_matrix/federation/v1/query/profile, whole profile: the
  field endpoints read one field of it, so one query serves all three client endpoints).
- Its answers are cached in memory: at most `max_entries` users, least recently used dropped
  first, each kept `ttl_s` seconds (query.yaml: requesting servers MAY cache). The TTL is short
  because nothing invalidates an entry: a profile change reaches us only as member events.
  Failures are not cached, so a peer that comes back is asked again at the next request.
- When the query fails (unreachable, refused, 404, an answer that is no object), the profile is
  read from the user's current m.room.member event in a room the requester is joined to as well
  (§Profiles: users who share a room with the requester MUST be visible). That answer depends
  on who asks, so it is never cached.
- Errors when there is no such room: a remote 403 M_FORBIDDEN stays 403 (profile.yaml: "The
  server is unwilling to disclose whether the user exists"); anything else is 404 M_NOT_FOUND.
  An unreachable server is 404 too, with the reason in the message: profile.yaml defines 404 as
  "There is no profile information for this user" and no other error for a lookup that could
  not be made, and clients already treat a 404 as "show the bare user id" (Synapse answers the
  same for a user it cannot fetch and shares no room with).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.federation.client import (
    FederationClient,
    RemoteError,
    UnreachableError,
)
from dendrite_lite.storage import Storage
from dendrite_lite.storage import state as state_table
from dendrite_lite.users.profile import Profile

__all__ = ["RemoteProfiles", "DEFAULT_TTL_S", "DEFAULT_MAX_ENTRIES", "QUERY_TIMEOUT_S"]

DEFAULT_TTL_S = 180.0
DEFAULT_MAX_ENTRIES = 1024
# A client waits on this request (and Element asks for profiles while opening a room): a peer
# that has not answered in this time is treated as unreachable.
QUERY_TIMEOUT_S = 15.0

_QUERY_PROFILE = "/_matrix/federation/v1/query/profile"


class RemoteProfiles:
    """`get_profile(user_id, requester)` for users whose server is not ours."""

    def __init__(
        self,
        storage: Storage,
        client: FederationClient,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.storage = storage
        self.client = client
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._cache: OrderedDict[str, tuple[float, Profile]] = OrderedDict()

    async def get_profile(self, user_id: str, requester: str | None) -> Profile:
        """`user_id` is a valid user id on another server; `requester` is None for a request
        without an access token (then there is no shared room to fall back on)."""
        cached = self._cached(user_id)
        if cached is not None:
            return cached
        try:
            profile = await self._query(user_id)
        except MatrixError:
            fallback = await self._shared_room_profile(user_id, requester)
            if fallback is None:
                raise
            return fallback
        self._remember(user_id, profile)
        return profile

    def _cached(self, user_id: str) -> Profile | None:
        entry = self._cache.get(user_id)
        if entry is None:
            return None
        expires, profile = entry
        if expires <= self._clock():
            del self._cache[user_id]
            return None
        self._cache.move_to_end(user_id)
        return profile

    def _remember(self, user_id: str, profile: Profile) -> None:
        self._cache[user_id] = (self._clock() + self.ttl_s, profile)
        self._cache.move_to_end(user_id)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)

    async def _query(self, user_id: str) -> Profile:
        server = user_id.partition(":")[2]
        try:
            answer = await self.client.get_json(
                server, _QUERY_PROFILE, query={"user_id": user_id}, timeout_s=QUERY_TIMEOUT_S
            )
        except RemoteError as e:
            if e.status == 403 and e.errcode == Errcode.FORBIDDEN:
                raise MatrixError(
                    Errcode.FORBIDDEN, f"{server} does not disclose the profile of {user_id}"
                ) from None
            raise MatrixError(Errcode.NOT_FOUND, f"Profile not found ({server}: {e.message})") from None
        except UnreachableError as e:
            raise MatrixError(
                Errcode.NOT_FOUND, f"Profile not found: {server} could not be reached ({e.message})"
            ) from None
        if not isinstance(answer, dict):
            raise MatrixError(Errcode.NOT_FOUND, f"Profile not found ({server} sent no profile)")
        return Profile(_text(answer.get("displayname")), _text(answer.get("avatar_url")))

    async def _shared_room_profile(self, user_id: str, requester: str | None) -> Profile | None:
        if requester is None:
            return None
        found = await self.storage.db.read(
            lambda c: state_table.select_shared_member_profile(c, requester, user_id)
        )
        return Profile(*found) if found is not None else None


def _text(value: Any) -> str | None:
    # query.yaml: an unset field is omitted or null; anything but a string is treated as unset.
    return value if isinstance(value, str) else None
