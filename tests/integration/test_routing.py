"""URL routing of the Quart app (api/app.py: raw-path map and decoding converters), over real HTTP:
encoded slashes stay inside one segment, trailing slashes never matter, nothing redirects."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from quart import Blueprint, Quart, request

from dendrite_lite.server import Listener
from tests.conftest import RunningServer, launch

ROOM = "/_test/rooms/<room_id>"
bp = Blueprint("test_routing", __name__)


async def _echo(**values: str) -> dict[str, str]:
    return {"rule": str(request.url_rule), **values}


bp.add_url_rule(f"{ROOM}/send/<event_type>/<txn_id>", "send", _echo, methods=["PUT"])
bp.add_url_rule(f"{ROOM}/state/<event_type>", "state_short", _echo, methods=["GET", "PUT"],
                defaults={"state_key": ""})
bp.add_url_rule(f"{ROOM}/state/<event_type>/<path:state_key>", "state", _echo, methods=["GET", "PUT"])
bp.add_url_rule(f"{ROOM}/<any(invite, kick):action>", "member", _echo, methods=["POST"])
bp.add_url_rule(f"{ROOM}/state", "full_state", _echo, methods=["GET"])
bp.add_url_rule("/_test/pushrules/", "pushrules", _echo, methods=["GET"])


def add_routes(app: Quart, listener: Listener) -> None:
    app.register_blueprint(bp)


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    s = await launch(tmp_path_factory.mktemp("routing"), configure_app=add_routes)
    yield s
    await s.stop()


async def test_variables_are_percent_decoded_per_segment(srv: RunningServer) -> None:
    # A v3 event id may hold "/", sent as %2F: it must stay one segment.
    resp = await srv.client.put("/_test/rooms/%21r%3Ax/send/m.room.message/a%2Fb")
    assert resp.status_code == 200
    body = resp.json()
    assert (body["room_id"], body["event_type"], body["txn_id"]) == ("!r:x", "m.room.message", "a/b")


async def test_path_variable_takes_the_rest_and_defaults_fill_the_short_form(srv: RunningServer) -> None:
    resp = await srv.client.get("/_test/rooms/!r/state/m.room.member/@a:x/extra")
    assert resp.json()["state_key"] == "@a:x/extra"
    resp = await srv.client.get("/_test/rooms/!r/state/m.room.member/%40a%3Ax%2Fy")
    assert resp.json()["state_key"] == "@a:x/y"
    resp = await srv.client.get("/_test/rooms/!r/state/m.room.name")
    assert resp.json()["state_key"] == ""
    # A trailing slash is the empty state key too: no 404, and no redirect.
    resp = await srv.client.put("/_test/rooms/!r/state/m.room.name/")
    assert resp.status_code == 200 and resp.json()["state_key"] == ""


async def test_literal_rule_beats_a_variable_one(srv: RunningServer) -> None:
    resp = await srv.client.get("/_test/rooms/!r/state")
    assert resp.json()["rule"].endswith("/state")
    assert "event_type" not in resp.json()


@pytest.mark.parametrize("path", ["/_test/pushrules", "/_test/pushrules/"])
async def test_trailing_slash_never_matters(srv: RunningServer, path: str) -> None:
    resp = await srv.client.get(path)
    assert resp.status_code == 200, resp.text


async def test_no_redirects_for_doubled_slashes(srv: RunningServer) -> None:
    resp = await srv.client.get("/_test//pushrules")
    assert resp.status_code == 404 and resp.json()["errcode"] == "M_UNRECOGNIZED"


async def test_any_matches_only_the_listed_words(srv: RunningServer) -> None:
    assert (await srv.client.post("/_test/rooms/!r/kick")).json()["action"] == "kick"
    resp = await srv.client.post("/_test/rooms/!r/frobnicate")
    assert resp.status_code == 404 and resp.json()["errcode"] == "M_UNRECOGNIZED"


async def test_wrong_method_reports_the_allowed_ones(srv: RunningServer) -> None:
    resp = await srv.client.get("/_test/rooms/!r/send/t/1")
    assert resp.status_code == 405 and resp.json()["errcode"] == "M_UNRECOGNIZED"
    assert set(resp.headers["allow"].split(", ")) == {"PUT", "OPTIONS"}  # OPTIONS: CORS preflight


async def test_head_is_served_by_get_routes(srv: RunningServer) -> None:
    resp = await srv.client.head("/_test/rooms/!r/state")
    assert resp.status_code == 200 and resp.content == b""
    get = await srv.client.get("/_test/rooms/!r/state")
    assert resp.headers["content-length"] == str(len(get.content))


@pytest.mark.parametrize(
    "path", ["/_test/rooms//send/t/1", "/_test/rooms/!r/send/t", "/_test/nope"]
)
async def test_unknown_or_incomplete_paths_do_not_match(srv: RunningServer, path: str) -> None:
    resp = await srv.client.put(path)
    assert resp.status_code == 404 and resp.json()["errcode"] == "M_UNRECOGNIZED"
