"""Single sign-on with OpenID Connect ([[oidc_providers]]; client-server-api §SSO client
login/authentication) against a real OpenID Provider, panva's oidc-provider
(tests/interop/oidc_peer.py), over https with its own CA: a browser's whole round trip
(redirect -> the provider's login and consent -> our callback -> the continue page ->
m.login.token -> whoami), the (idp, sub) mapping, claims, the refusals (required claims, state,
the provider's errors, an unverifiable ID token, a provider that is down) and the m.login.sso
stage of user-interactive authentication."""

from __future__ import annotations

import urllib.parse
from typing import Any

import httpx

from dendrite_lite.config import OidcProviderConfig
from tests.conftest import SERVER_NAME, RunningServer, StartServer
from tests.integration.account_helpers import V3, auth_header, fast_hashing_for_tests
from tests.integration.sso_helpers import (
    continue_link,
    delete_device,
    local_path,
    token_login,
    token_of,
)
from tests.integration.sync_helpers import new_user
from tests.interop.oidc_peer import CALLBACK, SECRET, OidcPeer, browser, oidc_peer, sign_in_at_provider
from tests.interop.synapse_server import free_port
from tests.spec_schema import assert_matches_operation

__all__ = ["oidc_peer"]  # the session fixture, used here

REDIRECT = "https://client.example/app?p=1"
OPEN = {"registration.mode": "open", "ratelimit.enabled": False}


def _provider(peer: OidcPeer, **keys: Any) -> OidcProviderConfig:
    values: dict[str, Any] = {
        "idp_id": "op", "idp_name": "Family login", "issuer": peer.issuer,
        "client_id": "dendrite", "client_secret": SECRET, "ca_file": peer.ca_file,
        "scopes": ("openid", "profile", "email", "groups"), "email_claim": "email",
    }
    return OidcProviderConfig(**{**values, **keys})


async def _server(start_server: StartServer, *providers: OidcProviderConfig) -> RunningServer:
    return await start_server({**OPEN, "oidc_providers": providers})


async def _callback(srv: RunningServer, peer: OidcPeer, login: str | None, *,
                    start: str = "/login/sso/redirect/op") -> httpx.Response:
    """The browser from the client's redirect, through the provider, to our callback's page."""
    resp = await srv.client.get(f"{V3}{start}", params={"redirectUrl": REDIRECT})
    assert resp.status_code == 302, resp.text
    async with browser(peer) as b:
        back = await sign_in_at_provider(b, resp.headers["location"], login)
    assert back.startswith(CALLBACK + "?"), back
    return await srv.client.get(local_path(back))


async def _sso_login(srv: RunningServer, peer: OidcPeer, login: str, **extra: Any) -> dict[str, Any]:
    page = await _callback(srv, peer, login)
    link = continue_link(page)
    assert link.startswith(REDIRECT + "&loginToken=")
    resp = await token_login(srv.client, token_of(link), **extra)
    assert resp.status_code == 200, resp.text
    whoami = await srv.client.get(f"{V3}/account/whoami", headers=auth_header(resp.json()["access_token"]))
    assert whoami.json()["user_id"] == resp.json()["user_id"]
    return resp.json()


def _assert_page(resp: httpx.Response, status: int, *words: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("text/html")
    for word in words:
        assert word in resp.text, resp.text


async def test_flows_redirect_and_two_providers(start_server: StartServer, oidc_peer: OidcPeer) -> None:
    srv = await _server(start_server, _provider(oidc_peer, idp_icon="mxc://example.org/icon"),
                        _provider(oidc_peer, idp_id="second", idp_name="Second", client_id="dendrite-public",
                                  client_secret=""))
    body = (await srv.client.get(f"{V3}/login")).json()
    assert body["flows"] == [
        {"type": "m.login.password"},
        {"type": "m.login.sso", "identity_providers": [
            {"id": "op", "name": "Family login", "icon": "mxc://example.org/icon"},
            {"id": "second", "name": "Second"},
        ]},
        {"type": "m.login.token"},
    ]
    assert_matches_operation("client-server/login.yaml", "/login", "get", 200, body)

    resp = await srv.client.get(f"{V3}/login/sso/redirect/op", params={"redirectUrl": REDIRECT})
    assert resp.status_code == 302
    location = urllib.parse.urlsplit(resp.headers["location"])
    query = urllib.parse.parse_qs(location.query)
    assert f"{location.scheme}://{location.netloc}" == oidc_peer.issuer
    assert query["client_id"] == ["dendrite"] and query["response_type"] == ["code"]
    assert query["redirect_uri"] == [CALLBACK]
    assert query["scope"] == ["openid profile email groups"]
    assert query["code_challenge_method"] == ["S256"]
    assert {"state", "nonce", "code_challenge"} <= query.keys()
    assert REDIRECT not in resp.headers["location"]  # kept server-side with the state

    # Without an id and with two providers: a page to pick one, linking to each.
    picker = await srv.client.get(f"{V3}/login/sso/redirect", params={"redirectUrl": REDIRECT})
    _assert_page(picker, 200, "Family login", "Second",
                 "/_matrix/client/v3/login/sso/redirect/second?redirectUrl=")
    for path, params, status, errcode in (
        ("/login/sso/redirect/nope", {"redirectUrl": REDIRECT}, 404, "M_NOT_FOUND"),
        ("/login/sso/redirect/op", {"redirectUrl": "javascript:alert(1)"}, 400, "M_INVALID_PARAM"),
        ("/login/sso/redirect/op", {}, 400, "M_MISSING_PARAM"),
        ("/login/cas/redirect", {"redirectUrl": REDIRECT}, 404, "M_UNRECOGNIZED"),
    ):
        resp = await srv.client.get(f"{V3}{path}", params=params)
        assert (resp.status_code, resp.json()["errcode"]) == (status, errcode), path

    # The public client (PKCE, no secret) signs in too.
    user = await _sso_login_via(srv, oidc_peer, "bob-sub", "second")
    assert user["user_id"] == f"@bob:{SERVER_NAME}"


async def _sso_login_via(srv: RunningServer, peer: OidcPeer, login: str, idp_id: str) -> dict[str, Any]:
    page = await _callback(srv, peer, login, start=f"/login/sso/redirect/{idp_id}")
    resp = await token_login(srv.client, token_of(continue_link(page)))
    assert resp.status_code == 200, resp.text
    return resp.json()


async def test_first_login_registers_and_the_second_is_the_same_account(
    start_server: StartServer, oidc_peer: OidcPeer
) -> None:
    # One provider: /login/sso/redirect without an id goes straight to it.
    srv = await _server(start_server, _provider(oidc_peer))
    first = await _callback(srv, oidc_peer, "alice-sub", start="/login/sso/redirect")
    _assert_page(first, 200, f"signed in as @alice:{SERVER_NAME}", "Continue to client.example")
    login = await token_login(srv.client, token_of(continue_link(first)))
    assert login.status_code == 200 and login.json()["user_id"] == f"@alice:{SERVER_NAME}"
    token = login.json()["access_token"]
    profile = await srv.client.get(f"{V3}/profile/@alice:{SERVER_NAME}")
    assert profile.json()["displayname"] == "Alice Liddell"
    threepids = await srv.client.get(f"{V3}/account/3pid", headers=auth_header(token))
    assert [(t["medium"], t["address"]) for t in threepids.json()["threepids"]] == [
        ("email", "alice@example.org")
    ]

    # A rename at the provider: the subject still names the same account.
    oidc_peer.set_claims("alice-sub", preferred_username="alice.renamed")
    try:
        again = await _sso_login(srv, oidc_peer, "alice-sub")
    finally:
        oidc_peer.set_claims("alice-sub", preferred_username="Alice")
    assert again["user_id"] == f"@alice:{SERVER_NAME}"
    devices = await srv.client.get(f"{V3}/devices", headers=auth_header(token))
    assert len(devices.json()["devices"]) == 2


async def test_existing_accounts_required_claims_and_auto_register(
    start_server: StartServer, oidc_peer: OidcPeer
) -> None:
    srv = await _server(start_server, _provider(oidc_peer, required_claims={"groups": "family"}),
                        _provider(oidc_peer, idp_id="linking", allow_existing_users=True),
                        _provider(oidc_peer, idp_id="closed", auto_register=False))
    with fast_hashing_for_tests():
        await new_user(srv.client, "bob")
    # bob's localpart is taken by a password account: refused, naming the key.
    page = await _callback(srv, oidc_peer, "bob-sub")
    _assert_page(page, 409, "already an account @bob:", "allow_existing_users")
    # mallory is not in the family group.
    _assert_page(await _callback(srv, oidc_peer, "mallory-sub"), 403, "not allowed")
    # No account and no auto-registration.
    page = await _callback(srv, oidc_peer, "mallory-sub", start="/login/sso/redirect/closed")
    _assert_page(page, 403, "no account @mallory:")
    # A provider allowed to link existing users signs in as bob.
    assert (await _sso_login_via(srv, oidc_peer, "bob-sub", "linking"))["user_id"] == f"@bob:{SERVER_NAME}"


async def test_state_and_provider_errors(start_server: StartServer, oidc_peer: OidcPeer) -> None:
    down = OidcProviderConfig(idp_id="down", idp_name="Down", issuer=f"https://127.0.0.1:{free_port()}",
                              client_id="x")
    srv = await _server(start_server, _provider(oidc_peer), down,
                        _provider(oidc_peer, idp_id="hs", client_id="dendrite-hs256"))
    callback = "/_dendrite_lite/client/oidc/callback"
    # A state we never issued, none at all, or one used already: refused, never a 500.
    _assert_page(await srv.client.get(callback, params={"state": "forged", "code": "x"}), 400, "expired")
    _assert_page(await srv.client.get(callback), 400, "expired")
    resp = await srv.client.get(f"{V3}/login/sso/redirect/op", params={"redirectUrl": REDIRECT})
    async with browser(oidc_peer) as b:
        back = await sign_in_at_provider(b, resp.headers["location"], "bob-sub")
    assert (await srv.client.get(local_path(back))).status_code == 200
    _assert_page(await srv.client.get(local_path(back)), 400, "already used")

    # The user says no at the provider: error=access_denied.
    _assert_page(await _callback(srv, oidc_peer, None), 403, "Family login did not let you sign in",
                 "access_denied")
    # A provider that is down: a page at the redirect, 502.
    resp = await srv.client.get(f"{V3}/login/sso/redirect/down", params={"redirectUrl": REDIRECT})
    _assert_page(resp, 502, "could not be fetched")
    # An ID token we cannot verify with the provider's keys (HS256 with the client secret).
    page = await _callback(srv, oidc_peer, "bob-sub", start="/login/sso/redirect/hs")
    _assert_page(page, 502, "ID token is not valid")


async def test_off_without_providers(client: httpx.AsyncClient) -> None:
    resp = await client.get("/_dendrite_lite/client/oidc/callback", params={"state": "x"})
    assert (resp.status_code, resp.json()["errcode"]) == (404, "M_UNRECOGNIZED")


# -- user-interactive authentication ---------------------------------------------------------


async def _uia_sso(srv: RunningServer, peer: OidcPeer, session: str, login: str) -> httpx.Response:
    """The browser on the m.login.sso fallback page: its link to the provider (prompt=login),
    `login` signs in there, and back to our callback's page."""
    page = await srv.client.get(f"{V3}/auth/m.login.sso/fallback/web", params={"session": session})
    link = continue_link(page)
    assert link.startswith("/_dendrite_lite/client/oidc/reauth?"), link
    resp = await srv.client.get(link)
    assert resp.status_code == 302, resp.text
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(resp.headers["location"]).query)["prompt"] == ["login"]
    async with browser(peer) as b:
        back = await sign_in_at_provider(b, resp.headers["location"], login)
    return await srv.client.get(local_path(back))


async def test_uia_with_oidc(start_server: StartServer, oidc_peer: OidcPeer) -> None:
    srv = await _server(start_server, _provider(oidc_peer))
    alice = await _sso_login(srv, oidc_peer, "alice-sub", device_id="LAPTOP")
    await _sso_login(srv, oidc_peer, "alice-sub", device_id="PHONE")
    await _sso_login(srv, oidc_peer, "bob-sub")  # bob has an account too
    first = await delete_device(srv, alice["access_token"], "PHONE")
    assert first.status_code == 401
    assert first.json()["flows"] == [{"stages": ["m.login.sso"]}]  # no password: SSO only
    session = first.json()["session"]

    # Bob signs in on alice's fallback page: recorded, and the deletion is refused.
    page = await _uia_sso(srv, oidc_peer, session, "bob-sub")
    _assert_page(page, 200, "will be refused")
    resp = await delete_device(srv, alice["access_token"], "PHONE", {"session": session})
    assert (resp.status_code, resp.json()["errcode"]) == (403, "M_FORBIDDEN"), resp.text
    # A provider user with no account here cannot complete a stage at all.
    page = await _uia_sso(srv, oidc_peer, session, "mallory-sub")
    _assert_page(page, 403, "not linked")

    # Alice herself, in the same session: done, and the device goes.
    page = await _uia_sso(srv, oidc_peer, session, "alice-sub")
    _assert_page(page, 200, "window.onAuthDone()")
    resp = await delete_device(srv, alice["access_token"], "PHONE", {"session": session})
    assert resp.status_code == 200, resp.text
    devices = await srv.client.get(f"{V3}/devices", headers=auth_header(alice["access_token"]))
    assert [d["device_id"] for d in devices.json()["devices"]] == ["LAPTOP"]


async def test_cas_and_oidc_side_by_side(start_server: StartServer, oidc_peer: OidcPeer) -> None:
    cas = "https://cas.example.org/cas"  # only linked to here, never asked
    srv = await start_server({**OPEN, "cas.server_url": cas, "oidc_providers": (_provider(oidc_peer),)})
    flows = (await srv.client.get(f"{V3}/login")).json()["flows"]
    assert flows[1:] == [
        {"type": "m.login.sso", "identity_providers": [{"id": "cas", "name": "CAS"},
                                                       {"id": "op", "name": "Family login"}]},
        {"type": "m.login.cas"},
        {"type": "m.login.token"},
    ]
    picker = await srv.client.get(f"{V3}/login/sso/redirect", params={"redirectUrl": REDIRECT})
    _assert_page(picker, 200, "Continue with CAS", "Continue with Family login")
    resp = await srv.client.get(f"{V3}/login/sso/redirect/cas", params={"redirectUrl": REDIRECT})
    assert resp.status_code == 302 and resp.headers["location"].startswith(cas + "/login?service=")
    resp = await srv.client.get(f"{V3}/login/cas/redirect", params={"redirectUrl": REDIRECT})
    assert resp.status_code == 302 and resp.headers["location"].startswith(cas + "/login?service=")

    # A password account's sensitive action: the fallback page offers both sign-in servers.
    with fast_hashing_for_tests():
        alice = await new_user(srv.client, "alice")
    first = await delete_device(srv, alice.token, alice.device_id)
    assert first.json()["flows"] == [{"stages": ["m.login.password"]}, {"stages": ["m.login.sso"]}]
    page = await srv.client.get(f"{V3}/auth/m.login.sso/fallback/web",
                                params={"session": first.json()["session"]})
    _assert_page(page, 200, "sign in again with CAS or Family login", f'href="{cas}/login?service=',
                 'href="/_dendrite_lite/client/oidc/reauth?idp_id=op&amp;session=')
