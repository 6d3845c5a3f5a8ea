"""Push rules over HTTP (pushrules.yaml)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.integration.user_data_helpers import World, assert_error, open_world, q
from tests.spec_schema import assert_matches_operation

_RULE = "/pushrules/global/{kind}/{ruleId}"


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async for w in open_world(tmp_path_factory.mktemp("pushrules")):
        yield w


async def test_get_all_and_global(world: World) -> None:
    resp = await world.call("alice", "GET", "/pushrules/")
    assert resp.status_code == 200
    body = resp.json()
    assert_matches_operation("client-server/pushrules.yaml", "/pushrules/", "get", 200, body)
    assert body["global"]["override"][0]["rule_id"] == ".m.rule.master"
    resp = await world.call("alice", "GET", "/pushrules/global/")
    assert resp.status_code == 200 and resp.json() == body["global"]
    assert_matches_operation("client-server/pushrules.yaml", "/pushrules/global/", "get", 200, resp.json())
    assert_error(await world.client.get("/_matrix/client/v3/pushrules/"), 401, "M_MISSING_TOKEN")


async def test_rule_lifecycle(world: World) -> None:
    path = "/pushrules/global/content/cake"
    resp = await world.call("alice", "PUT", path, {"pattern": "cake*lie", "actions": ["notify"]})
    assert resp.status_code == 200 and resp.json() == {}
    assert_matches_operation("client-server/pushrules.yaml", _RULE, "put", 200, resp.json())
    resp = await world.call("alice", "GET", path)
    assert resp.json() == {"rule_id": "cake", "default": False, "enabled": True, "actions": ["notify"], "pattern": "cake*lie"}
    assert_matches_operation("client-server/pushrules.yaml", _RULE, "get", 200, resp.json())
    # before/after query parameters.
    resp = await world.call("alice", "PUT", "/pushrules/global/content/pie", {"pattern": "pie", "actions": []}, params={"after": "cake"})
    assert resp.status_code == 200
    ids = [r["rule_id"] for r in (await world.call("alice", "GET", "/pushrules/")).json()["global"]["content"]]
    assert ids == ["cake", "pie", ".m.rule.contains_user_name"]  # user rules first
    resp = await world.call("alice", "PUT", f"{path}/enabled", {"enabled": False})
    assert resp.status_code == 200
    resp = await world.call("alice", "GET", f"{path}/enabled")
    assert resp.json() == {"enabled": False}
    assert_matches_operation("client-server/pushrules.yaml", f"{_RULE}/enabled", "get", 200, resp.json())
    assert (await world.call("alice", "PUT", f"{path}/actions", {"actions": []})).status_code == 200
    resp = await world.call("alice", "GET", f"{path}/actions")
    assert resp.json() == {"actions": []}
    assert_matches_operation("client-server/pushrules.yaml", f"{_RULE}/actions", "get", 200, resp.json())
    # Bob sees none of it.
    assert [r["rule_id"] for r in (await world.call("bob", "GET", "/pushrules/")).json()["global"]["content"]] == [
        ".m.rule.contains_user_name"
    ]
    # Delete.
    assert (await world.call("alice", "DELETE", path)).status_code == 200
    assert_error(await world.call("alice", "GET", path), 404, "M_NOT_FOUND")
    assert_error(await world.call("alice", "DELETE", path), 404, "M_NOT_FOUND")


async def test_default_rules_can_be_toggled(world: World) -> None:
    path = "/pushrules/global/override/.m.rule.master"
    assert (await world.call("alice", "GET", f"{path}/enabled")).json() == {"enabled": False}
    assert (await world.call("alice", "PUT", f"{path}/enabled", {"enabled": True})).status_code == 200
    rule = (await world.call("alice", "GET", path)).json()
    assert rule["enabled"] is True and rule["default"] is True
    # The change reaches the user's other devices as account data.
    data = await world.call("alice", "GET", f"/user/{q(world.ids['alice'])}/account_data/m.push_rules")
    assert data.json()["global"]["override"][0]["enabled"] is True
    assert (await world.call("alice", "PUT", f"{path}/enabled", {"enabled": False})).status_code == 200
    assert_error(await world.call("alice", "DELETE", path), 400, "M_INVALID_PARAM")


@pytest.mark.parametrize(
    ("method", "path", "body", "params", "status", "errcode"),
    [
        ("GET", "/pushrules/global/content/nope", None, None, 404, "M_NOT_FOUND"),
        ("GET", "/pushrules/global/content/nope/enabled", None, None, 404, "M_NOT_FOUND"),
        ("PUT", "/pushrules/global/content/nope/actions", {"actions": []}, None, 404, "M_NOT_FOUND"),
        ("PUT", "/pushrules/global/bogus/x", {"actions": []}, None, 400, "M_INVALID_PARAM"),
        ("PUT", "/pushrules/global/override/.mine", {"actions": []}, None, 400, "M_INVALID_PARAM"),
        ("PUT", "/pushrules/global/content/x", {"actions": []}, None, 400, "M_BAD_JSON"),  # no pattern
        ("PUT", "/pushrules/global/override/x", {"conditions": []}, None, 400, "M_BAD_JSON"),  # no actions
        ("PUT", "/pushrules/global/override/.m.rule.master/enabled", {"enabled": "yes"}, None, 400, "M_BAD_JSON"),
        ("PUT", "/pushrules/global/override/.m.rule.master/enabled", {}, None, 400, "M_MISSING_PARAM"),
        ("PUT", "/pushrules/global/override/y", {"actions": []}, {"before": "no_such_rule"}, 400, "M_UNKNOWN"),
        ("PUT", "/pushrules/global/override/y", {"actions": []}, {"after": ".m.rule.master"}, 400, "M_INVALID_PARAM"),
        ("GET", "/pushrules/global/override/.m.rule.master/bogus", None, None, 400, "M_UNRECOGNIZED"),
        ("PUT", "/pushrules/global/override/.m.rule.master/bogus", {"enabled": True}, None, 400, "M_UNRECOGNIZED"),
        ("GET", "/pushrules/global", None, None, 400, "M_UNRECOGNIZED"),
        ("GET", "/pushrules/global/room", None, None, 400, "M_UNRECOGNIZED"),
        ("GET", "/pushrules/not_a_scope/", None, None, 400, "M_UNRECOGNIZED"),
        ("GET", "/pushrules/global/not_a_kind/", None, None, 400, "M_INVALID_PARAM"),
        ("PUT", "/pushrules/", {}, None, 400, "M_UNRECOGNIZED"),
        ("GET", "/pushrules", None, None, 404, "M_UNRECOGNIZED"),
        ("PUT", "/pushrules/global", {}, None, 400, "M_UNRECOGNIZED"),
        ("PUT", "/pushrules/global/room", {}, None, 400, "M_UNRECOGNIZED"),
        ("PUT", "/pushrules/global/room/", {}, None, 400, "M_UNRECOGNIZED"),
        ("PUT", "/pushrules/not_a_scope/room/x", {"actions": []}, None, 400, "M_UNRECOGNIZED"),
    ],
)
async def test_errors(world: World, method: str, path: str, body, params, status: int, errcode: str) -> None:  # type: ignore[no-untyped-def]
    resp = await world.call("alice", method, path, body, params=params)
    assert_error(resp, status, errcode)
    # Nothing was created by a refused request.
    rules = (await world.call("alice", "GET", "/pushrules/")).json()["global"]
    assert all(r["rule_id"] not in ("x", "y", ".mine") for kind in rules.values() for r in kind)


async def test_kind_listing_and_legacy_rule_shapes(world: World) -> None:
    # A room rule named by an alias (SyTest, Synapse accept it) and a historical action, read
    # back as set; the kind's own listing has the trailing slash.
    path = "/pushrules/global/room/%23spam:example.com"
    assert (await world.call("bob", "PUT", path, {"actions": ["notify"]})).status_code == 200
    listed = (await world.call("bob", "GET", "/pushrules/global/room/")).json()
    assert [r["rule_id"] for r in listed] == ["#spam:example.com"]
    assert (await world.call("bob", "PUT", f"{path}/actions", {"actions": ["dont_notify"]})).status_code == 200
    assert (await world.call("bob", "GET", f"{path}/actions")).json() == {"actions": ["dont_notify"]}
    assert (await world.call("bob", "DELETE", path)).status_code == 200
    assert (await world.call("bob", "GET", "/pushrules/global/room/")).json() == []
