"""OpenID (modules/openid.md): POST /user/{userId}/openid/request_token, checked by a third
party at GET /_matrix/federation/v1/openid/userinfo on the federation listener."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.conftest import RunningServer
from tests.integration.account_helpers import running_server
from tests.integration.sync_helpers import User, new_user
from tests.spec_schema import assert_matches_operation


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path_factory.mktemp("openid")) as s:
        yield s


async def _token(user: User) -> dict[str, object]:
    resp = await user.post(f"/user/{user.user_id}/openid/request_token", {})
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


async def test_token_checked_by_userinfo(srv: RunningServer) -> None:
    alice = await new_user(srv.client, "alice")
    body = await _token(alice)
    assert_matches_operation(
        "client-server/openid.yaml", "/user/{userId}/openid/request_token", "post", 200, body
    )
    token = body["access_token"]
    assert isinstance(token, str) and len(token) >= 32
    assert body == {"access_token": token, "token_type": "Bearer",
                    "matrix_server_name": "test.localhost", "expires_in": 3600}
    resp = await srv.federation.get(
        "/_matrix/federation/v1/openid/userinfo", params={"access_token": token}
    )
    assert resp.status_code == 200 and resp.json() == {"sub": alice.user_id}
    assert_matches_operation("server-server/openid.yaml", "/openid/userinfo", "get", 200, resp.json())
    # Each request is a new token; the first stays valid.
    assert (await _token(alice))["access_token"] != token
    resp = await srv.federation.get(
        "/_matrix/federation/v1/openid/userinfo", params={"access_token": token}
    )
    assert resp.json() == {"sub": alice.user_id}
    # Not a client API access token.
    resp = await srv.client.get(
        "/_matrix/client/v3/account/whoami", headers={"Authorization": f"Bearer {token}"}
    )
    assert resp.status_code == 401 and resp.json()["errcode"] == "M_UNKNOWN_TOKEN"


async def test_userinfo_takes_the_token_as_a_bearer_header_too(srv: RunningServer) -> None:
    """SyTest "Can generate a openid access_token that can be exchanged for information about a
    user", run with --hs-token-header, sends the token as `Authorization: Bearer`."""
    alice = await new_user(srv.client, "erin")
    token = (await _token(alice))["access_token"]
    resp = await srv.federation.get(
        "/_matrix/federation/v1/openid/userinfo", headers={"Authorization": f"Bearer {token}"}
    )
    assert (resp.status_code, resp.json()) == (200, {"sub": alice.user_id})
    resp = await srv.federation.get(
        "/_matrix/federation/v1/openid/userinfo", headers={"Authorization": "Bearer nope"}
    )
    assert (resp.status_code, resp.json()["errcode"]) == (401, "M_UNKNOWN_TOKEN")


async def test_userinfo_refuses_unknown_tokens(srv: RunningServer) -> None:
    alice = await new_user(srv.client, "bob")
    for params in ({"access_token": "nope"}, {}, {"access_token": alice.token}):
        resp = await srv.federation.get("/_matrix/federation/v1/openid/userinfo", params=params)
        assert resp.status_code == 401, params
        assert resp.json()["errcode"] == "M_UNKNOWN_TOKEN"


async def test_request_token_errors(srv: RunningServer) -> None:
    carol, dave = await new_user(srv.client, "carol"), await new_user(srv.client, "dave")
    resp = await carol.post(f"/user/{dave.user_id}/openid/request_token", {})
    assert resp.status_code == 403 and resp.json()["errcode"] == "M_FORBIDDEN"
    resp = await srv.client.post(
        f"/_matrix/client/v3/user/{carol.user_id}/openid/request_token",
        content=b"not json", headers=carol.headers,
    )
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_NOT_JSON"
    resp = await srv.client.post(
        f"/_matrix/client/v3/user/{carol.user_id}/openid/request_token", json={}
    )
    assert resp.status_code == 401 and resp.json()["errcode"] == "M_MISSING_TOKEN"
