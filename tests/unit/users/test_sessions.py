"""Sessions service: password login, tokens, expiry and soft logout, refresh rotation, logout."""

from __future__ import annotations

import pytest

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.storage import Storage
from dendrite_lite.storage import devices as devices_table
from dendrite_lite.users.devices import list_devices
from dendrite_lite.users.sessions import (
    LAST_SEEN_INTERVAL_MS,
    authenticate,
    login_with_password,
    logout,
    logout_all,
    open_session,
    refresh_session,
    user_id_from_identifier,
)

HS = "example.org"
ALICE = "@alice:example.org"




def _err(exc: pytest.ExceptionInfo[MatrixError]) -> tuple[int, str, dict]:
    return exc.value.status, exc.value.errcode, exc.value.extra


@pytest.mark.parametrize(
    "body",
    [
        {"identifier": {"type": "m.id.user", "user": "alice"}},
        {"identifier": {"type": "m.id.user", "user": "@alice:example.org"}},
        {"identifier": {"type": "m.id.user", "user": "Alice"}},
        {"user": "alice"},
        {"user": "@alice:example.org"},
    ],
)
def test_identifier_forms_name_the_same_user(body: dict) -> None:
    assert user_id_from_identifier(body, HS) == ALICE


@pytest.mark.parametrize(
    ("body", "status", "errcode"),
    [
        ({"identifier": {"type": "m.id.thirdparty", "medium": "email", "address": "a@b.c"}}, 403, "M_FORBIDDEN"),
        ({"medium": "email", "address": "a@b.c"}, 403, "M_FORBIDDEN"),
        ({"identifier": {"type": "m.id.phone", "country": "GB", "phone": "123"}}, 403, "M_FORBIDDEN"),
        ({"identifier": {"type": "m.id.thirdparty", "medium": "email"}}, 400, "M_MISSING_PARAM"),
        ({"identifier": {"type": "m.id.user", "user": "@alice:elsewhere.org"}}, 403, "M_FORBIDDEN"),
        ({"identifier": {"type": "m.id.user"}}, 400, "M_INVALID_PARAM"),
        ({"identifier": {"type": "m.id.carrier_pigeon"}}, 400, "M_UNKNOWN"),
        ({"identifier": "alice"}, 400, "M_INVALID_PARAM"),
        ({}, 400, "M_MISSING_PARAM"),
    ],
)
def test_identifier_errors(body: dict, status: int, errcode: str) -> None:
    with pytest.raises(MatrixError) as e:
        user_id_from_identifier(body, HS)
    assert (e.value.status, e.value.errcode) == (status, errcode)


async def test_login_creates_device_and_token_that_authenticates(storage: Storage) -> None:
    session = await login_with_password(
        storage, HS, {"user": "alice", "password": "secret", "initial_device_display_name": "Phone"},
        ip="10.0.0.1",
    )
    assert session.user_id == ALICE and len(session.device_id) == 10
    assert session.refresh_token is None and session.expires_in_ms is None
    requester = await authenticate(storage, session.access_token, ip="10.0.0.2")
    assert (requester.user_id, requester.device_id) == (ALICE, session.device_id)
    assert not requester.is_admin and not requester.is_guest
    [device] = await list_devices(storage, ALICE)
    assert device.display_name == "Phone" and device.last_seen_ip == "10.0.0.2"


async def test_wrong_password_and_unknown_user_are_forbidden(storage: Storage) -> None:
    for body in ({"user": "alice", "password": "nope"}, {"user": "nobody", "password": "secret"}):
        with pytest.raises(MatrixError) as e:
            await login_with_password(storage, HS, body)
        assert _err(e)[:2] == (403, "M_FORBIDDEN")
    assert await list_devices(storage, ALICE) == []


async def test_login_with_known_device_id_revokes_its_old_token(storage: Storage) -> None:
    first = await login_with_password(
        storage, HS, {"user": "alice", "password": "secret", "device_id": "DEV",
                      "initial_device_display_name": "Old name"},
    )
    second = await login_with_password(
        storage, HS, {"user": "alice", "password": "secret", "device_id": "DEV",
                      "initial_device_display_name": "New name"},
    )
    assert first.device_id == second.device_id == "DEV"
    with pytest.raises(MatrixError) as e:
        await authenticate(storage, first.access_token)
    assert _err(e) == (401, "M_UNKNOWN_TOKEN", {"soft_logout": False})
    assert (await authenticate(storage, second.access_token)).device_id == "DEV"
    [device] = await list_devices(storage, ALICE)
    assert device.display_name == "Old name"  # ignored for a known device (spec)


async def test_expired_token_is_soft_logged_out(storage: Storage) -> None:
    session = await open_session(storage, ALICE, with_refresh=True, now=1_000, lifetime_ms=500)
    assert session.expires_in_ms == 500 and session.refresh_token
    await authenticate(storage, session.access_token, now=1_499)
    with pytest.raises(MatrixError) as e:
        await authenticate(storage, session.access_token, now=1_500)
    assert _err(e) == (401, "M_UNKNOWN_TOKEN", {"soft_logout": True})


async def test_soft_logged_out_flag_answers_soft_logout(storage: Storage) -> None:
    session = await open_session(storage, ALICE)
    await storage.db.write(lambda conn: devices_table.update_tokens_soft_logged_out(conn, ALICE))
    with pytest.raises(MatrixError) as e:
        await authenticate(storage, session.access_token)
    assert _err(e)[2] == {"soft_logout": True}


async def test_refresh_keeps_old_pair_until_new_token_is_used(storage: Storage) -> None:
    s0 = await open_session(storage, ALICE, with_refresh=True, now=1_000, lifetime_ms=500)
    assert s0.refresh_token is not None
    s1 = await refresh_session(storage, s0.refresh_token, now=2_000, lifetime_ms=500)
    assert s1.device_id == s0.device_id and s1.refresh_token != s0.refresh_token
    # The client may not have received s1: the old refresh token still works...
    s1b = await refresh_session(storage, s0.refresh_token, now=2_001, lifetime_ms=500)
    # ...until a new access token is used.
    await authenticate(storage, s1b.access_token, now=2_002)
    with pytest.raises(MatrixError) as e:
        await refresh_session(storage, s0.refresh_token, now=2_003)
    assert _err(e) == (401, "M_UNKNOWN_TOKEN", {"soft_logout": False})
    with pytest.raises(MatrixError):
        await authenticate(storage, s0.access_token, now=1_001)


async def test_refreshing_with_the_new_refresh_token_revokes_the_old_pair(storage: Storage) -> None:
    s0 = await open_session(storage, ALICE, with_refresh=True, now=1_000)
    assert s0.refresh_token
    s1 = await refresh_session(storage, s0.refresh_token, now=2_000)
    assert s1.refresh_token
    s2 = await refresh_session(storage, s1.refresh_token, now=3_000)
    assert s2.refresh_token
    with pytest.raises(MatrixError):
        await refresh_session(storage, s0.refresh_token, now=3_001)
    assert (await authenticate(storage, s2.access_token, now=3_002)).user_id == ALICE


async def test_unknown_refresh_token(storage: Storage) -> None:
    with pytest.raises(MatrixError) as e:
        await refresh_session(storage, "dlr_nope")
    assert _err(e) == (401, "M_UNKNOWN_TOKEN", {"soft_logout": False})


async def test_last_seen_written_at_most_once_per_interval(storage: Storage) -> None:
    session = await open_session(storage, ALICE, now=1_000)
    await authenticate(storage, session.access_token, ip="1.1.1.1", now=10_000)
    await authenticate(storage, session.access_token, ip="2.2.2.2", now=10_001)
    [device] = await list_devices(storage, ALICE)
    assert (device.last_seen_ip, device.last_seen_ts) == ("1.1.1.1", 10_000)
    later = 10_000 + LAST_SEEN_INTERVAL_MS
    await authenticate(storage, session.access_token, ip="3.3.3.3", now=later)
    [device] = await list_devices(storage, ALICE)
    assert (device.last_seen_ip, device.last_seen_ts) == ("3.3.3.3", later)


async def test_logout_and_logout_all(storage: Storage) -> None:
    a = await open_session(storage, ALICE)
    b = await open_session(storage, ALICE)
    c = await open_session(storage, ALICE)
    await logout(storage, await authenticate(storage, a.access_token))
    assert {d.device_id for d in await list_devices(storage, ALICE)} == {b.device_id, c.device_id}
    with pytest.raises(MatrixError):
        await authenticate(storage, a.access_token)
    await logout_all(storage, ALICE)
    assert await list_devices(storage, ALICE) == []
    for s in (b, c):
        with pytest.raises(MatrixError):
            await authenticate(storage, s.access_token)
