"""Synapse-compatible /_synapse/admin/v1/registration_tokens, used end to end with /register."""

from __future__ import annotations

import dataclasses

import pytest

from dendrite_lite.config import RatelimitConfig
from dendrite_lite.storage import accounts as accounts_table
from dendrite_lite.users.accounts import create_account
from tests.integration.account_helpers import (
    PASSWORD,
    V3,
    auth_header,
    register,
    running_server,
    server_storage,
)

ADMIN = "/_synapse/admin/v1/registration_tokens"


async def test_admin_manages_tokens_used_by_register(tmp_path_factory: pytest.TempPathFactory) -> None:
    async with running_server(tmp_path_factory.mktemp("admin_tokens")) as s:
        admin = await register(s.client, "admin")
        user = await register(s.client, "plain")
        await server_storage(s).db.write(
            lambda c: accounts_table.update_account_admin(c, admin["user_id"], True))
        h = auth_header(admin["access_token"])

        denied = await s.client.get(ADMIN, headers=auth_header(user["access_token"]))
        assert (denied.status_code, denied.json()["errcode"]) == (403, "M_FORBIDDEN")
        assert (await s.client.get(ADMIN)).json()["errcode"] == "M_MISSING_TOKEN"

        made = await s.client.post(f"{ADMIN}/new", json={"token": "friends", "uses_allowed": 1}, headers=h)
        assert made.status_code == 200, made.text
        assert made.json() == {"token": "friends", "uses_allowed": 1, "pending": 0, "completed": 0,
                               "expiry_time": None}
        generated = (await s.client.post(f"{ADMIN}/new", json={}, headers=h)).json()
        assert len(generated["token"]) == 16 and generated["uses_allowed"] is None
        dup = await s.client.post(f"{ADMIN}/new", json={"token": "friends"}, headers=h)
        assert (dup.status_code, dup.json()["errcode"]) == (400, "M_INVALID_PARAM")

        listed = (await s.client.get(ADMIN, headers=h)).json()["registration_tokens"]
        assert {t["token"] for t in listed} == {"friends", generated["token"]}
        got = await s.client.get(f"{ADMIN}/friends", headers=h)
        assert got.json()["completed"] == 0
        missing = await s.client.get(f"{ADMIN}/nope", headers=h)
        assert (missing.status_code, missing.json()["errcode"]) == (404, "M_NOT_FOUND")

        # Deleting works; deleting again is 404.
        assert (await s.client.delete(f"{ADMIN}/{generated['token']}", headers=h)).status_code == 200
        assert (await s.client.delete(f"{ADMIN}/{generated['token']}", headers=h)).status_code == 404


async def test_token_use_shows_in_admin_api(tmp_path_factory: pytest.TempPathFactory) -> None:
    async with running_server(tmp_path_factory.mktemp("admin_tokens2"), {"registration.mode": "token"}) as s:
        await create_account(server_storage(s), "@boss:test.localhost", PASSWORD, admin=True)
        login = await s.client.post(f"{V3}/login", json={"type": "m.login.password", "user": "boss",
                                                          "password": PASSWORD})
        h = auth_header(login.json()["access_token"])
        await s.client.post(f"{ADMIN}/new", json={"token": "once", "uses_allowed": 1}, headers=h)
        half = await s.client.post(f"{V3}/register", json={
            "username": "newbie", "password": PASSWORD,
            "auth": {"type": "m.login.registration_token", "token": "once"}})
        assert half.status_code == 401 and half.json()["completed"] == ["m.login.registration_token"]
        resp = await s.client.post(f"{V3}/register", json={
            "auth": {"type": "m.login.dummy", "session": half.json()["session"]}})
        assert resp.status_code == 200, resp.text
        token = (await s.client.get(f"{ADMIN}/once", headers=h)).json()
        assert token["completed"] == 1
        assert (await s.client.get(ADMIN, params={"valid": "true"}, headers=h)).json() == {
            "registration_tokens": []}
        invalid = (await s.client.get(ADMIN, params={"valid": "false"}, headers=h)).json()
        assert [t["token"] for t in invalid["registration_tokens"]] == ["once"]


async def test_uia_password_attempts_are_rate_limited(tmp_path_factory: pytest.TempPathFactory) -> None:
    limits = dataclasses.replace(RatelimitConfig(), login_per_second=0.001, login_burst=3,
                                 register_per_second=0)
    async with running_server(tmp_path_factory.mktemp("uia_rl"), {"ratelimit": limits}) as s:
        me = await register(s.client, "guessed")
        h = auth_header(me["access_token"])
        codes = []
        for _ in range(4):
            resp = await s.client.post(f"{V3}/account/deactivate", headers=h, json={"auth": {
                "type": "m.login.password", "user": "guessed", "password": "guess"}})
            codes.append((resp.status_code, resp.json().get("errcode")))
        assert codes == [(401, "M_FORBIDDEN")] * 3 + [(429, "M_LIMIT_EXCEEDED")]
