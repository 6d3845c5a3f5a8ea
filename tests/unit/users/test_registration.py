"""Registration service: modes, UIA flows, username checks, tokens, guests, shared secret."""

from __future__ import annotations

import dataclasses
import pytest

from dendrite_lite.config import Config, RegistrationConfig, ServerConfig
from dendrite_lite.errors import MatrixError
from dendrite_lite.ratelimit import RateLimiter
from dendrite_lite.storage import Storage
from dendrite_lite.users.accounts import check_password, create_account, get_account
from dendrite_lite.users.registration import (
    SharedSecretNonces,
    check_username_available,
    register_guest,
    register_user,
    register_with_shared_secret,
    shared_secret_mac,
)
from dendrite_lite.users.registration_tokens import create_token, get_token, is_token_valid
from dendrite_lite.users.sessions import authenticate
from dendrite_lite.users.uia import UiaRequired, UiaSessions

HS = "example.org"


def _config(mode: str = "open", **kw) -> Config:
    return Config(
        server=ServerConfig(server_name=HS),
        registration=dataclasses.replace(RegistrationConfig(), mode=mode, **kw),
    )




async def _register(storage: Storage, uia: UiaSessions, config: Config, body: dict, stage: dict):
    """Start a UIA session, complete `stage`, then the dummy stage if the flow still wants one."""
    with pytest.raises(UiaRequired) as e:
        await register_user(storage, uia, config, body)
    sid = e.value.session.session_id
    if stage["type"] == "m.login.dummy":
        return await register_user(storage, uia, config, {**body, "auth": {**stage, "session": sid}})
    with pytest.raises(UiaRequired) as e:
        await register_user(storage, uia, config, {**body, "auth": {**stage, "session": sid}})
    assert e.value.to_json()["completed"] == [stage["type"]]
    return await register_user(
        storage, uia, config, {**body, "auth": {"type": "m.login.dummy", "session": sid}}
    )


async def test_open_registration_with_dummy_stage(storage: Storage) -> None:
    uia, config = UiaSessions(), _config("open")
    body = {"username": "Carol", "password": "pw", "initial_device_display_name": "Laptop",
            "device_id": "LAPTOP"}
    result = await _register(storage, uia, config, body, {"type": "m.login.dummy"})
    assert result.user_id == "@carol:example.org"
    assert result.session is not None and result.session.device_id == "LAPTOP"
    json = result.to_json()
    assert set(json) == {"user_id", "access_token", "device_id", "home_server"}
    requester = await authenticate(storage, result.session.access_token)
    assert requester.user_id == "@carol:example.org"
    assert await check_password(storage, "@carol:example.org", "pw")
    # The finished session is kept only to answer a repeat with the same user.
    assert len(uia) == 1


async def test_closed_registration_is_forbidden(storage: Storage) -> None:
    with pytest.raises(MatrixError) as e:
        await register_user(storage, UiaSessions(), _config("closed"), {})
    assert (e.value.status, e.value.errcode) == (403, "M_FORBIDDEN")


@pytest.mark.parametrize(
    ("username", "errcode"), [("bad name", "M_INVALID_USERNAME"), ("taken", "M_USER_IN_USE"),
                              (12, "M_INVALID_USERNAME")]
)
async def test_username_problems_come_before_uia(storage: Storage, username, errcode) -> None:
    await create_account(storage, "@taken:example.org", None)
    with pytest.raises(MatrixError) as e:
        await register_user(storage, UiaSessions(), _config(), {"username": username})
    assert not isinstance(e.value, UiaRequired)
    assert (e.value.status, e.value.errcode) == (400, errcode)


async def test_missing_password_after_uia(storage: Storage) -> None:
    with pytest.raises(MatrixError) as e:
        await _register(storage, UiaSessions(), _config(), {"username": "x"}, {"type": "m.login.dummy"})
    assert (e.value.status, e.value.errcode) == (400, "M_MISSING_PARAM")


async def test_generated_username_and_inhibit_login(storage: Storage) -> None:
    result = await _register(
        storage, UiaSessions(), _config(), {"password": "pw", "inhibit_login": True},
        {"type": "m.login.dummy"},
    )
    assert result.session is None and result.to_json() == {
        "user_id": result.user_id, "home_server": HS}
    localpart = result.user_id[1:].split(":")[0]
    assert localpart.isdigit() and len(localpart) == 10
    assert await get_account(storage, result.user_id) is not None


async def test_token_registration_counts_uses(storage: Storage) -> None:
    uia, config = UiaSessions(), _config("token")
    await create_token(storage, now=1, token="once", uses_allowed=1)
    stage = {"type": "m.login.registration_token", "token": "once"}
    with pytest.raises(UiaRequired) as e:
        await register_user(storage, uia, config, {"username": "a", "password": "pw"})
    assert e.value.to_json()["flows"] == [
        {"stages": ["m.login.registration_token", "m.login.dummy"]}
    ]
    await _register(storage, uia, config, {"username": "a", "password": "pw"}, stage)
    token = await get_token(storage, "once")
    assert token is not None and token.completed == 1
    assert not await is_token_valid(storage, "once", now=2)
    with pytest.raises(UiaRequired) as e:
        await register_user(storage, uia, config, {"username": "b", "password": "pw"})
    sid = e.value.session.session_id
    with pytest.raises(UiaRequired) as e:
        await register_user(storage, uia, config, {"auth": {**stage, "session": sid}})
    assert e.value.to_json()["errcode"] == "M_UNAUTHORIZED"
    assert not e.value.to_json().get("completed")


async def test_token_used_up_between_stage_and_registration(storage: Storage) -> None:
    uia, config = UiaSessions(), _config("token")
    await create_token(storage, now=1, token="last", uses_allowed=1)
    stage = {"type": "m.login.registration_token", "token": "last"}
    # Two clients both pass the stage while one use is left; only one may register.
    sessions = []
    for name in ("a", "b"):
        with pytest.raises(UiaRequired) as e:
            await register_user(storage, uia, config, {"username": name, "password": "pw"})
        sessions.append(e.value.session.session_id)
    body = {"password": "pw"}
    for name, sid in zip(("a", "b"), sessions):
        with pytest.raises(UiaRequired):  # token stage passed; the dummy stage remains
            await register_user(storage, uia, config, {**body, "username": name, "auth": {**stage, "session": sid}})
    dummy = {"type": "m.login.dummy"}
    await register_user(storage, uia, config, {**body, "username": "a", "auth": {**dummy, "session": sessions[0]}})
    with pytest.raises(MatrixError) as e2:
        await register_user(storage, uia, config, {**body, "username": "b", "auth": {**dummy, "session": sessions[1]}})
    assert e2.value.errcode in ("M_UNAUTHORIZED",)
    assert await get_account(storage, "@b:example.org") is None


async def test_create_token_validation(storage: Storage) -> None:
    token = await create_token(storage, now=1)
    assert len(token.token) == 16
    for kwargs in ({"token": "has space"}, {"token": "x" * 65}, {"uses_allowed": -1},
                   {"expiry_ts": 1}, {"token": token.token}):
        with pytest.raises(MatrixError) as e:
            await create_token(storage, now=1, **kwargs)
        assert e.value.errcode == "M_INVALID_PARAM"
    await create_token(storage, now=1, token="soon", expiry_ts=100)
    assert await is_token_valid(storage, "soon", now=99)
    assert not await is_token_valid(storage, "soon", now=100)


async def test_guests(storage: Storage) -> None:
    with pytest.raises(MatrixError) as e:
        await register_guest(storage, _config(), {})
    assert (e.value.status, e.value.errcode) == (403, "M_GUEST_ACCESS_FORBIDDEN")
    result = await register_guest(
        storage, _config(allow_guests=True),
        {"username": "ignored", "device_id": "IGNORED", "initial_device_display_name": "G"},
    )
    assert result.session is not None and result.session.device_id != "IGNORED"
    assert "ignored" not in result.user_id
    requester = await authenticate(storage, result.session.access_token)
    assert requester.is_guest


async def test_register_ratelimit_applies_to_account_creation(storage: Storage) -> None:
    limiter = RateLimiter(0.001, 1, action="registration")
    uia, config = UiaSessions(), _config()
    with pytest.raises(UiaRequired) as e:
        await register_user(storage, uia, config, {"username": "r1", "password": "pw"}, ip="1.2.3.4", ratelimiter=limiter)
    await register_user(storage, uia, config, {"auth": {"type": "m.login.dummy", "session": e.value.session.session_id}}, ip="1.2.3.4", ratelimiter=limiter)
    with pytest.raises(UiaRequired) as e:
        await register_user(storage, uia, config, {"username": "r2", "password": "pw"}, ip="1.2.3.4", ratelimiter=limiter)
    with pytest.raises(MatrixError) as e2:
        await register_user(storage, uia, config, {"auth": {"type": "m.login.dummy", "session": e.value.session.session_id}}, ip="1.2.3.4", ratelimiter=limiter)
    assert (e2.value.status, e2.value.errcode) == (429, "M_LIMIT_EXCEEDED")
    assert e2.value.extra["retry_after_ms"] > 0


async def test_check_username_available(storage: Storage) -> None:
    assert await check_username_available(storage, HS, "Free") == "@free:example.org"


def _shared_body(nonces: SharedSecretNonces, secret: str, **kw) -> dict:
    body = {"nonce": nonces.new(), "username": "root", "password": "pw", "admin": True, **kw}
    body["mac"] = shared_secret_mac(
        secret, body["nonce"], body["username"], body["password"], body["admin"], body.get("user_type")
    )
    return body


async def test_shared_secret_registration(storage: Storage) -> None:
    config, nonces = _config("closed", shared_secret="s3cret"), SharedSecretNonces()
    body = _shared_body(nonces, "s3cret", displayname="Root")
    session = await register_with_shared_secret(storage, config, nonces, body)
    account = await get_account(storage, "@root:example.org")
    assert account is not None and account.is_admin and account.displayname == "Root"
    assert (await authenticate(storage, session.access_token)).is_admin
    # The nonce was single-use.
    with pytest.raises(MatrixError) as e:
        await register_with_shared_secret(storage, config, nonces, body)
    assert (e.value.status, e.value.error) == (400, "unrecognised nonce")


async def test_shared_secret_errors(storage: Storage) -> None:
    nonces = SharedSecretNonces()
    with pytest.raises(MatrixError) as e:
        await register_with_shared_secret(storage, _config(), nonces, {})
    assert e.value.status == 400  # not enabled
    config = _config(shared_secret="s3cret")
    bad = _shared_body(nonces, "wrong")
    with pytest.raises(MatrixError) as e:
        await register_with_shared_secret(storage, config, nonces, bad)
    assert (e.value.status, e.value.errcode) == (403, "M_FORBIDDEN")
    with pytest.raises(MatrixError) as e:
        await register_with_shared_secret(storage, config, nonces, {"username": "x"})
    assert e.value.errcode == "M_BAD_JSON"


def test_nonces_expire() -> None:
    now = [0.0]
    nonces = SharedSecretNonces(clock=lambda: now[0])
    a, b = nonces.new(), nonces.new()
    assert nonces.take(a) and not nonces.take(a)
    now[0] = 61.0
    assert not nonces.take(b)
    assert not nonces.take(None)
