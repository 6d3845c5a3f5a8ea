"""URL rules and matching (dendrite_lite/api/routing.py)."""

from __future__ import annotations

import pytest

from dendrite_lite.api.routing import Blueprint, Router


async def _h(**kw: str) -> dict[str, str]:
    return kw


def _router(*rules: tuple[str, tuple[str, ...], dict[str, str] | None]) -> Router:
    bp = Blueprint("t")
    for rule, methods, defaults in rules:
        bp.add_url_rule(rule, None, _h, methods, defaults)
    router = Router()
    router.add(bp.routes)
    return router


ROOM = "/_matrix/client/v3/rooms/<room_id>"
R = _router(
    (f"{ROOM}/send/<event_type>/<txn_id>", ("PUT",), None),
    (f"{ROOM}/state/<event_type>", ("GET", "PUT"), {"state_key": ""}),
    (f"{ROOM}/state/<event_type>/<path:state_key>", ("GET", "PUT"), None),
    (f"{ROOM}/<any(invite, kick):action>", ("POST",), None),
    (f"{ROOM}/state", ("GET",), None),
    ("/_matrix/client/v3/pushrules/", ("GET",), None),
    ("/health", ("GET",), None),
)


def test_variables_are_percent_decoded_per_segment() -> None:
    # A v3 event id may hold "/", sent as %2F: it must stay one segment.
    m = R.match("/_matrix/client/v3/rooms/%21r%3Ax/send/m.room.message/a%2Fb", "PUT")
    assert m.route is not None
    assert m.values == {"room_id": "!r:x", "event_type": "m.room.message", "txn_id": "a/b"}


def test_path_variable_takes_the_rest_and_defaults_fill_the_short_form() -> None:
    m = R.match("/_matrix/client/v3/rooms/!r/state/m.room.member/@a:x/extra", "GET")
    assert m.values == {"room_id": "!r", "event_type": "m.room.member", "state_key": "@a:x/extra"}
    short = R.match("/_matrix/client/v3/rooms/!r/state/m.room.name", "GET")
    assert short.values == {"room_id": "!r", "event_type": "m.room.name", "state_key": ""}
    # A trailing slash is the empty state key too, not a 404.
    slash = R.match("/_matrix/client/v3/rooms/!r/state/m.room.name/", "PUT")
    assert slash.values["state_key"] == ""


def test_literal_rule_beats_a_variable_one() -> None:
    m = R.match("/_matrix/client/v3/rooms/!r/state", "GET")
    assert m.route is not None and m.route.rule.endswith("/state")


@pytest.mark.parametrize("path", ["/_matrix/client/v3/pushrules", "/_matrix/client/v3/pushrules/"])
def test_trailing_slash_never_matters(path: str) -> None:
    assert R.match(path, "GET").route is not None


def test_any_matches_only_the_listed_words() -> None:
    assert R.match("/_matrix/client/v3/rooms/!r/kick", "POST").values["action"] == "kick"
    miss = R.match("/_matrix/client/v3/rooms/!r/frobnicate", "POST")
    assert miss.route is None and miss.allowed == frozenset()


def test_wrong_method_reports_the_allowed_ones() -> None:
    m = R.match("/_matrix/client/v3/rooms/!r/send/t/1", "GET")
    assert m.route is None and m.allowed == frozenset({"PUT"})


def test_head_is_served_by_get_routes() -> None:
    assert R.match("/health", "HEAD").route is not None


@pytest.mark.parametrize(
    "path", ["/", "/_matrix/client/v3/rooms//send/t/1", "/_matrix/client/v3/rooms/!r/send/t", "/nope"]
)
def test_unknown_or_incomplete_paths_do_not_match(path: str) -> None:
    m = R.match(path, "PUT")
    assert m.route is None and m.allowed == frozenset()


def test_bad_rules_are_refused_when_declared() -> None:
    with pytest.raises(ValueError):
        Blueprint("x").add_url_rule("/a/<path:p>/b", None, _h, ("GET",))
    with pytest.raises(ValueError):
        Blueprint("x").add_url_rule("/a/b<c>", None, _h, ("GET",))
