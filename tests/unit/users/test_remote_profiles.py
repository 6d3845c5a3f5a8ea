"""Other servers' profiles (users/remote_profiles.py, users/profile.lookup_profile): the
federation query, the bounded TTL cache, the shared-room fallback and the errors, with a fake
federation client over a real database (one v12 room where a remote user is joined)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from dendrite_lite.errors import MatrixError
from dendrite_lite.federation.client import RemoteError, UnreachableError
from dendrite_lite.rooms.pipeline import EventSpec
from dendrite_lite.storage import state as state_table
from dendrite_lite.users.profile import Profile, lookup_profile, profile_field
from dendrite_lite.users.remote_profiles import QUERY_TIMEOUT_S, RemoteProfiles
from tests.unit.rooms.room_env import ALICE, CAROL, RoomEnv, open_env

FAR = "@far:far.example"
OTHER = "@other:far.example"


class FakeClient:
    """get_json answers from `answers` (user id -> a dict or an exception to raise)."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    async def get_json(self, destination: str, path: str, **kw: Any) -> Any:
        self.calls.append((destination, path, kw))
        answer = self.answers[kw["query"]["user_id"]]
        if isinstance(answer, Exception):
            raise answer
        return answer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[RoomEnv]:
    env = await open_env(tmp_path)
    # FAR joins alice's room with a member-event profile: alice shares a room with FAR, carol
    # does not.
    content = {"membership": "join", "displayname": "Far (member)", "avatar_url": "mxc://far/m"}
    await env.pipeline.send(env.room_id, EventSpec(FAR, "m.room.member", content, FAR))
    yield env
    await env.storage.close()


def profiles(env: RoomEnv, client: FakeClient, **kw: Any) -> RemoteProfiles:
    return RemoteProfiles(env.storage, client, **kw)  # type: ignore[arg-type]


async def error_of(call: Any) -> MatrixError:
    with pytest.raises(MatrixError) as info:
        await call
    return info.value


async def test_asks_the_users_server_and_keeps_two_fields(env: RoomEnv) -> None:
    client = FakeClient({FAR: {"displayname": "Far", "avatar_url": "mxc://far/a", "m.tz": "UTC"}})
    found = await profiles(env, client).get_profile(FAR, None)
    assert found == Profile("Far", "mxc://far/a")
    assert client.calls == [(
        "far.example", "/_matrix/federation/v1/query/profile",
        {"query": {"user_id": FAR}, "timeout_s": QUERY_TIMEOUT_S},
    )]


async def test_null_and_non_string_fields_are_unset(env: RoomEnv) -> None:
    client = FakeClient({FAR: {"displayname": None, "avatar_url": 5}})
    found = await profiles(env, client).get_profile(FAR, CAROL)
    assert found == Profile(None, None)
    with pytest.raises(MatrixError) as info:
        profile_field(found, "displayname")
    assert info.value.errcode == "M_NOT_FOUND"


async def test_answers_are_cached_until_the_ttl(env: RoomEnv) -> None:
    clock = Clock()
    client = FakeClient({FAR: {"displayname": "Far"}})
    remote = profiles(env, client, ttl_s=60, clock=clock)
    await remote.get_profile(FAR, None)
    clock.now += 59
    client.answers[FAR] = {"displayname": "Renamed"}
    assert (await remote.get_profile(FAR, ALICE)).displayname == "Far"
    assert len(client.calls) == 1
    clock.now += 1
    assert (await remote.get_profile(FAR, ALICE)).displayname == "Renamed"
    assert len(client.calls) == 2


async def test_cache_is_bounded_least_recently_used_first(env: RoomEnv) -> None:
    users = [f"@u{i}:far.example" for i in range(3)]
    client = FakeClient({u: {"displayname": u} for u in users})
    remote = profiles(env, client, max_entries=2)
    await remote.get_profile(users[0], None)
    await remote.get_profile(users[1], None)
    await remote.get_profile(users[0], None)  # u0 is now the most recently used
    await remote.get_profile(users[2], None)  # drops u1
    assert len(client.calls) == 3
    await remote.get_profile(users[0], None)
    assert len(client.calls) == 3
    await remote.get_profile(users[1], None)
    assert len(client.calls) == 4


async def test_unreachable_falls_back_on_a_shared_rooms_member_event(env: RoomEnv) -> None:
    client = FakeClient({FAR: UnreachableError("far.example", "connection refused")})
    remote = profiles(env, client)
    assert await remote.get_profile(FAR, ALICE) == Profile("Far (member)", "mxc://far/m")
    # The fallback depends on the requester: never cached, the server is asked again.
    await remote.get_profile(FAR, ALICE)
    assert len(client.calls) == 2


async def test_fallback_takes_the_newest_member_event(env: RoomEnv) -> None:
    second = await env.new_room(ALICE)
    await env.pipeline.send(
        second, EventSpec(FAR, "m.room.member", {"membership": "join", "displayname": "Newer"}, FAR)
    )
    client = FakeClient({FAR: RemoteError("far.example", 403, {"errcode": "M_FORBIDDEN"})})
    assert await profiles(env, client).get_profile(FAR, ALICE) == Profile("Newer", None)


async def test_fallback_needs_a_room_where_both_are_joined(env: RoomEnv) -> None:
    client = FakeClient({FAR: UnreachableError("far.example", "connection refused")})
    remote = profiles(env, client)
    for requester in (CAROL, None):
        e = await error_of(remote.get_profile(FAR, requester))
        assert (e.status, e.errcode) == (404, "M_NOT_FOUND")
        assert "far.example could not be reached" in e.error
    # A member who left is no longer shared.
    await env.pipeline.send(env.room_id, EventSpec(FAR, "m.room.member", {"membership": "leave"}, FAR))
    e = await error_of(remote.get_profile(FAR, ALICE))
    assert e.errcode == "M_NOT_FOUND"


async def test_remote_errors_without_fallback(env: RoomEnv) -> None:
    client = FakeClient({
        FAR: RemoteError("far.example", 404, {"errcode": "M_NOT_FOUND", "error": "no"}),
        OTHER: RemoteError("far.example", 403, {"errcode": "M_FORBIDDEN", "error": "no"}),
        "@bad:far.example": ["not", "an", "object"],
        "@err:far.example": RemoteError("far.example", 500, None),
    })
    remote = profiles(env, client)
    assert (await error_of(remote.get_profile(FAR, CAROL))).status == 404
    e = await error_of(remote.get_profile(OTHER, CAROL))
    assert (e.status, e.errcode) == (403, "M_FORBIDDEN")
    for user in ("@bad:far.example", "@err:far.example"):
        e = await error_of(remote.get_profile(user, CAROL))
        assert (e.status, e.errcode) == (404, "M_NOT_FOUND")
    # Failures are not cached.
    await error_of(remote.get_profile(FAR, CAROL))
    assert [c[2]["query"]["user_id"] for c in client.calls].count(FAR) == 2


async def test_lookup_profile_sends_only_other_servers_users_to_federation(env: RoomEnv) -> None:
    client = FakeClient({FAR: {"displayname": "Far"}})
    remote = profiles(env, client)
    found = await lookup_profile(env.storage, FAR, server_name="test", requester=None, remote=remote)
    assert found.displayname == "Far"
    # Ours: the accounts table (alice of the room env has no account: 404), never the client.
    e = await error_of(lookup_profile(env.storage, ALICE, server_name="test", requester=None, remote=remote))
    assert e.errcode == "M_NOT_FOUND"
    assert len(client.calls) == 1
    # Federation disabled: a remote user is unknown.
    e = await error_of(lookup_profile(env.storage, FAR, server_name="test", requester=ALICE, remote=None))
    assert e.errcode == "M_NOT_FOUND"
    e = await error_of(
        lookup_profile(env.storage, "not-a-user", server_name="test", requester=None, remote=remote)
    )
    assert e.errcode == "M_INVALID_PARAM"


async def test_fallback_hides_a_redacted_member_events_profile(env: RoomEnv) -> None:
    target = await env.storage.db.read(
        lambda c: state_table.select_current_state_event_id(c, env.room_id, "m.room.member", FAR)
    )
    assert target is not None
    await env.pipeline.send(env.room_id, EventSpec(ALICE, "m.room.redaction", {}, redacts=target))
    client = FakeClient({FAR: UnreachableError("far.example", "connection refused")})
    assert await profiles(env, client).get_profile(FAR, ALICE) == Profile(None, None)
