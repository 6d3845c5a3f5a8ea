"""Table-driven auth rules: for every numbered rejecting rule of every version family, one event
that passes and one that is rejected by exactly that rule (asserted by rule number and id).

RULES maps each rule id to its number in each family, typed by hand from the spec's rule lists
(content/rooms/fragments/v1-auth-rules.md, v3-auth-rules.md, v6.md, v7.md, v8-auth-rules.md,
v10.md, v11.md, v12.md); "-" marks a family without that rule. SCENARIOS build, per rule, a
passing event and a rejected one that differ in the one thing the rule is about.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from signedjson.key import encode_verify_key_base64, generate_signing_key, get_verify_key
from signedjson.sign import sign_json

from dendrite_lite.events.auth import (
    AuthError,
    check_auth,
    check_auth_events_selection,
    rule_numbers,
)
from dendrite_lite.events.event import Event
from dendrite_lite.events.room_versions import get_room_version
from tests.helpers import RoomBuilder, default_power_levels, make_event, make_room

CREATOR = "@creator:example.org"
BOB = "@bob:example.org"
CAROL = "@carol:other.org"
MOD = "@mod:example.org"  # power 60
DAVE = "@dave:third.org"  # not in the room

FAMILIES = {
    "v1": ("1", "2"),
    "v3": ("3", "4", "5"),
    "v6": ("6",),
    "v7": ("7",),
    "v8": ("8", "9"),
    "v10": ("10",),
    "v11": ("11",),
    "v12": ("12",),
}
FAMILY_ORDER = list(FAMILIES)

# rule id -> numbers for: v1 v3 v6 v7 v8 v10 v11 v12
RULES: dict[str, str] = {
    "create.prev_events": "1.1 1.1 1.1 1.1 1.1 1.1 1.1 1.1",
    "create.room_id": "1.2 1.2 1.2 1.2 1.2 1.2 1.2 1.2",
    "create.room_version": "1.3 1.3 1.3 1.3 1.3 1.3 1.3 1.3",
    "create.no_creator": "1.4 1.4 1.4 1.4 1.4 1.4 - -",
    "create.additional_creators": "- - - - - - - 1.4",
    "room_id.not_create_event": "- - - - - - - 2",
    "auth_events.duplicate": "2.1 2.1 2.1 2.1 2.1 2.1 2.1 3.1",
    "auth_events.unexpected": "2.2 2.2 2.2 2.2 2.2 2.2 2.2 3.2",
    "auth_events.rejected": "2.3 2.3 2.3 2.3 2.3 2.3 2.3 3.3",
    "auth_events.no_create": "2.4 2.4 2.4 2.4 2.4 2.4 2.4 -",
    "auth_events.room_id": "2.5 2.5 2.5 2.5 2.5 2.5 2.5 3.5",
    "federate": "3 3 3 3 3 3 3 4",
    "aliases.no_state_key": "4.1 4.1 - - - - - -",
    "aliases.domain": "4.2 4.2 - - - - - -",
    "membership.malformed": "5.1 5.1 4.1 4.1 4.1 4.1 4.1 5.1",
    "membership.authorised_via.unsigned": "- - - - 4.2.1 4.2.1 4.2.1 5.2.1",
    "membership.join.sender_not_target": "5.2.2 5.2.2 4.2.2 4.2.2 4.3.2 4.3.2 4.3.2 5.3.2",
    "membership.join.banned": "5.2.3 5.2.3 4.2.3 4.2.3 4.3.3 4.3.3 4.3.3 5.3.3",
    "membership.join.restricted_authoriser": "- - - - 4.3.5.2 4.3.5.2 4.3.5.2 5.3.5.2",
    "membership.join.not_allowed": "5.2.6 5.2.6 4.2.6 4.2.6 4.3.7 4.3.7 4.3.7 5.3.7",
    "membership.invite.tpi.target_banned": "5.3.1.1 5.3.1.1 4.3.1.1 4.3.1.1 4.4.1.1 4.4.1.1 4.4.1.1 5.4.1.1",
    "membership.invite.tpi.no_signed": "5.3.1.2 5.3.1.2 4.3.1.2 4.3.1.2 4.4.1.2 4.4.1.2 4.4.1.2 5.4.1.2",
    "membership.invite.tpi.signed_incomplete": "5.3.1.3 5.3.1.3 4.3.1.3 4.3.1.3 4.4.1.3 4.4.1.3 4.4.1.3 5.4.1.3",
    "membership.invite.tpi.mxid_mismatch": "5.3.1.4 5.3.1.4 4.3.1.4 4.3.1.4 4.4.1.4 4.4.1.4 4.4.1.4 5.4.1.4",
    "membership.invite.tpi.no_invite_event": "5.3.1.5 5.3.1.5 4.3.1.5 4.3.1.5 4.4.1.5 4.4.1.5 4.4.1.5 5.4.1.5",
    "membership.invite.tpi.sender_mismatch": "5.3.1.6 5.3.1.6 4.3.1.6 4.3.1.6 4.4.1.6 4.4.1.6 4.4.1.6 5.4.1.6",
    "membership.invite.tpi.bad_signature": "5.3.1.8 5.3.1.8 4.3.1.8 4.3.1.8 4.4.1.8 4.4.1.8 4.4.1.8 5.4.1.8",
    "membership.invite.sender_not_joined": "5.3.2 5.3.2 4.3.2 4.3.2 4.4.2 4.4.2 4.4.2 5.4.2",
    "membership.invite.target_joined_or_banned": "5.3.3 5.3.3 4.3.3 4.3.3 4.4.3 4.4.3 4.4.3 5.4.3",
    "membership.invite.insufficient_power": "5.3.5 5.3.5 4.3.5 4.3.5 4.4.5 4.4.5 4.4.5 5.4.5",
    "membership.leave.not_member": "5.4.1 5.4.1 4.4.1 4.4.1 4.5.1 4.5.1 4.5.1 5.5.1",
    "membership.leave.sender_not_joined": "5.4.2 5.4.2 4.4.2 4.4.2 4.5.2 4.5.2 4.5.2 5.5.2",
    "membership.leave.target_banned": "5.4.3 5.4.3 4.4.3 4.4.3 4.5.3 4.5.3 4.5.3 5.5.3",
    "membership.leave.insufficient_power": "5.4.5 5.4.5 4.4.5 4.4.5 4.5.5 4.5.5 4.5.5 5.5.5",
    "membership.ban.sender_not_joined": "5.5.1 5.5.1 4.5.1 4.5.1 4.6.1 4.6.1 4.6.1 5.6.1",
    "membership.ban.insufficient_power": "5.5.3 5.5.3 4.5.3 4.5.3 4.6.3 4.6.3 4.6.3 5.6.3",
    "membership.knock.join_rule": "- - - 4.6.1 4.7.1 4.7.1 4.7.1 5.7.1",
    "membership.knock.sender_not_target": "- - - 4.6.2 4.7.2 4.7.2 4.7.2 5.7.2",
    "membership.knock.bad_membership": "- - - 4.6.4 4.7.4 4.7.4 4.7.4 5.7.4",
    "membership.unknown": "5.6 5.6 4.6 4.7 4.8 4.8 4.8 5.8",
    "sender_not_joined": "6 6 5 5 5 5 5 6",
    "third_party_invite.insufficient_power": "7.1 7.1 6.1 6.1 6.1 6.1 6.1 7.1",
    "required_power_level": "8 8 7 7 7 7 7 8",
    "state_key.user_mismatch": "9 9 8 8 8 8 8 9",
    "power_levels.top_level_not_int": "- - - - - 9.1 9.1 10.1",
    "power_levels.events_not_int": "- - - - - 9.2 9.2 10.2",
    "power_levels.users_invalid": "10.1 10.1 9.1 9.1 9.1 9.3 9.3 10.3",
    "power_levels.users_has_creator": "- - - - - - - 10.4",
    "power_levels.top_level_old": "10.3.1 10.3.1 9.3.1 9.3.1 9.3.1 9.5.1 9.5.1 10.6.1",
    "power_levels.top_level_new": "10.3.2 10.3.2 9.3.2 9.3.2 9.3.2 9.5.2 9.5.2 10.6.2",
    "power_levels.events_old": "10.4.1 10.4.1 9.4.1 9.4.1 9.4.1 9.6.1 9.6.1 10.7.1",
    "power_levels.events_new": "10.5.1 10.5.1 9.5.1 9.5.1 9.5.1 9.7.1 9.7.1 10.8.1",
    "power_levels.users_old": "10.6.1 10.6.1 9.6.1 9.6.1 9.6.1 9.8.1 9.8.1 10.9.1",
    "power_levels.users_new": "10.7.1 10.7.1 9.7.1 9.7.1 9.7.1 9.9.1 9.9.1 10.10.1",
    "redaction.insufficient_power": "11.3 - - - - - - -",
}


def _numbers(rule_id: str, family: str) -> str | None:
    n = RULES[rule_id].split()[FAMILY_ORDER.index(family)]
    return None if n == "-" else n


# --- building blocks ----------------------------------------------------------------------------
Ctx = dict[tuple[str, str], Event] | list[Event]  # state for check_auth, or a list of auth events
Case = tuple[Event, Ctx]


def _run(event: Event, ctx: Ctx) -> None:
    if isinstance(ctx, list):
        check_auth_events_selection(event, ctx)
    else:
        check_auth(event, ctx)


def _room(
    v: str,
    *,
    join_rule: str = "public",
    pl: dict[str, Any] | None = None,
    members: tuple[str, ...] = (BOB, CAROL, MOD),
    create_content: dict[str, Any] | None = None,
) -> RoomBuilder:
    rv = get_room_version(v)
    content = default_power_levels(rv, CREATOR)
    content["users"] = {**content["users"], MOD: 60}
    content.update(pl or {})
    return make_room(
        v, CREATOR, join_rule=join_rule, power_levels=content, members=members,
        create_content=create_content,
    )


def _state(room: RoomBuilder, *extra: Event) -> dict[tuple[str, str], Event]:
    state = dict(room.state)
    for e in extra:
        state[e.state_tuple] = e
    return state


def _member(room: RoomBuilder, sender: str, target: str, membership: str, **content: Any) -> Event:
    return room.build("m.room.member", sender, {"membership": membership, **content}, target)


def _pair(room: RoomBuilder, ok: Event, bad: Event) -> tuple[Case, Case]:
    return (ok, room.state), (bad, room.state)


def _auth_list(room: RoomBuilder, event: Event) -> list[Event]:
    by_id = {e.event_id: e for e in room.events}
    return [by_id[i] for i in event.auth_event_ids]


# --- scenarios: rule id -> (room version id) -> ((ok event, ctx), (bad event, ctx)) ---------------
Scenario = Callable[[str], tuple[Case, Case]]
SCENARIOS: dict[str, Scenario] = {}


def scenario(rule_id: str) -> Callable[[Scenario], Scenario]:
    def register(fn: Scenario) -> Scenario:
        SCENARIOS[rule_id] = fn
        return fn

    return register


def _create_event(v: str, content: dict[str, Any] | None = None, **kw: Any) -> Event:
    rv = get_room_version(v)
    c: dict[str, Any] = {"room_version": v}
    if not rv.implicit_room_creator:
        c["creator"] = CREATOR
    c.update(content or {})
    return make_event(v, "m.room.create", CREATOR, c, "", room_id="!r:example.org", **kw)


@scenario("create.prev_events")
def _(v: str) -> tuple[Case, Case]:
    return (_create_event(v), {}), (_create_event(v, prev_events=["$earlier"]), {})


@scenario("create.room_id")
def _(v: str) -> tuple[Case, Case]:
    if get_room_version(v).room_id_is_create_event_hash:
        bad = _create_event(v, extra={"room_id": "!r:example.org"})
    else:
        bad = _create_event(v, extra={"room_id": "!r:other.org"})
    return (_create_event(v), {}), (bad, {})


@scenario("create.room_version")
def _(v: str) -> tuple[Case, Case]:
    return (_create_event(v), {}), (_create_event(v, {"room_version": "999"}), {})


@scenario("create.no_creator")
def _(v: str) -> tuple[Case, Case]:
    bad = make_event(v, "m.room.create", CREATOR, {}, "", room_id="!r:example.org")
    return (_create_event(v), {}), (bad, {})


@scenario("create.additional_creators")
def _(v: str) -> tuple[Case, Case]:
    ok = _create_event(v, {"additional_creators": [BOB, CAROL]})
    bad = _create_event(v, {"additional_creators": [BOB, "carol"]})
    return (ok, {}), (bad, {})


@scenario("room_id.not_create_event")
def _(v: str) -> tuple[Case, Case]:
    room = _room(v)
    ok = room.build("m.room.message", BOB, {"body": "x"})
    bad = make_event(v, "m.room.message", BOB, {"body": "x"}, room_id="!someotherroom",
                     auth_events=ok.auth_event_ids, prev_events=ok.prev_event_ids)
    return (ok, room.state), (bad, room.state)


@scenario("auth_events.duplicate")
def _(v: str) -> tuple[Case, Case]:
    room = _room(v)
    ok = room.build("m.room.message", BOB, {"body": "x"})
    old_pl = room.state[("m.room.power_levels", "")]
    new_pl = room.add("m.room.power_levels", CREATOR, dict(old_pl.content), "")
    return _with_extra_auth_event(room, ok, new_pl)


def _with_extra_auth_event(room: RoomBuilder, ok: Event, extra: Event) -> tuple[Case, Case]:
    """`ok` with its own auth events, and a copy of it that also cites `extra`."""
    bad = room.build("m.room.message", BOB, {"body": "x"}, auth_events=[*ok.auth_event_ids, extra])
    return (ok, _auth_list(room, ok)), (bad, _auth_list(room, bad))


@scenario("auth_events.unexpected")
def _(v: str) -> tuple[Case, Case]:
    room = _room(v)
    ok = room.build("m.room.message", BOB, {"body": "x"})
    extra = room.state[("m.room.join_rules", "")]
    if get_room_version(v).room_id_is_create_event_hash:
        extra = room.create  # v12: citing the create event is itself wrong
    return _with_extra_auth_event(room, ok, extra)


@scenario("auth_events.rejected")
def _(v: str) -> tuple[Case, Case]:
    room = _room(v)
    ok = room.build("m.room.message", BOB, {"body": "x"})
    auth = _auth_list(room, ok)
    bob_join = room.state[("m.room.member", BOB)]
    rejected = Event(bob_join.pdu, bob_join.room_version, bob_join.event_id,
                     room_id=bob_join.room_id, rejected_reason="auth")
    return (ok, auth), (ok, [rejected if a is bob_join else a for a in auth])


@scenario("auth_events.no_create")
def _(v: str) -> tuple[Case, Case]:
    room = _room(v)
    ok = room.build("m.room.message", BOB, {"body": "x"})
    bad = room.build("m.room.message", BOB, {"body": "x"},
                     auth_events=[a for a in ok.auth_event_ids if a != room.create.event_id])
    return (ok, _auth_list(room, ok)), (bad, _auth_list(room, bad))


@scenario("auth_events.room_id")
def _(v: str) -> tuple[Case, Case]:
    room = _room(v)
    ok = room.build("m.room.message", BOB, {"body": "x"})
    bob_join = room.state[("m.room.member", BOB)]
    foreign = make_event(v, "m.room.member", BOB, {"membership": "join"}, BOB,
                         room_id="!elsewhere:example.org")
    auth = [foreign if a is bob_join else a for a in _auth_list(room, ok)]
    return (ok, _auth_list(room, ok)), (ok, auth)


@scenario("federate")
def _(v: str) -> tuple[Case, Case]:
    room = _room(v, create_content={"m.federate": False})
    return _pair(room, room.build("m.room.message", BOB, {"body": "x"}),
                 room.build("m.room.message", CAROL, {"body": "x"}))


@scenario("aliases.no_state_key")
def _(v: str) -> tuple[Case, Case]:
    room = _room(v)
    # A non-member may set the aliases of its own server (v1-v5 special case).
    ok = room.build("m.room.aliases", DAVE, {"aliases": ["#a:third.org"]}, "third.org")
    bad = room.build("m.room.aliases", DAVE, {"aliases": ["#a:third.org"]})
    return _pair(room, ok, bad)


@scenario("aliases.domain")
def _(v: str) -> tuple[Case, Case]:
    room = _room(v)
    ok = room.build("m.room.aliases", BOB, {"aliases": []}, "example.org")
    bad = room.build("m.room.aliases", BOB, {"aliases": []}, "other.org")
    return _pair(room, ok, bad)


@scenario("membership.malformed")
def _(v: str) -> tuple[Case, Case]:
    room = _room(v)
    return _pair(room, room.build("m.room.member", DAVE, {"membership": "join"}, DAVE),
                 room.build("m.room.member", DAVE, {"displayname": "d"}, DAVE))


def _restricted_room(v: str) -> RoomBuilder:
    return _room(v, join_rule="restricted", pl={"invite": 50})


@scenario("membership.authorised_via.unsigned")
def _(v: str) -> tuple[Case, Case]:
    room = _restricted_room(v)
    content = {"membership": "join", "join_authorised_via_users_server": MOD}
    signed_by_both = {"third.org": {"ed25519:a": "x"}, "example.org": {"ed25519:b": "y"}}
    ok = room.build("m.room.member", DAVE, content, DAVE, signatures=signed_by_both)
    bad = room.build("m.room.member", DAVE, content, DAVE)  # only third.org signed
    return _pair(room, ok, bad)


@scenario("membership.join.sender_not_target")
def _(v: str) -> tuple[Case, Case]:
    room = _room(v)
    return _pair(room, _member(room, DAVE, DAVE, "join"), _member(room, BOB, DAVE, "join"))


@scenario("membership.join.banned")
def _(v: str) -> tuple[Case, Case]:
    room = _room(v)
    room.member(CREATOR, DAVE, "ban")
    return _pair(room, _member(room, "@eve:third.org", "@eve:third.org", "join"),
                 _member(room, DAVE, DAVE, "join"))


@scenario("membership.join.restricted_authoriser")
def _(v: str) -> tuple[Case, Case]:
    room = _restricted_room(v)
    sigs = {"third.org": {"ed25519:a": "x"}, "example.org": {"ed25519:b": "y"}}
    ok = room.build("m.room.member", DAVE,
                    {"membership": "join", "join_authorised_via_users_server": MOD}, DAVE,
                    signatures=sigs)
    # BOB is joined but has power 0 < invite 50.
    bad = room.build("m.room.member", DAVE,
                     {"membership": "join", "join_authorised_via_users_server": BOB}, DAVE,
                     signatures=sigs)
    return _pair(room, ok, bad)


@scenario("membership.join.not_allowed")
def _(v: str) -> tuple[Case, Case]:
    room = _room(v, join_rule="invite")
    room.member(CREATOR, DAVE, "invite")
    return _pair(room, _member(room, DAVE, DAVE, "join"),
                 _member(room, "@eve:third.org", "@eve:third.org", "join"))


# --- third-party invites -------------------------------------------------------------------------
IS_KEY = generate_signing_key("0")
OTHER_KEY = generate_signing_key("1")
TOKEN = "abc123"


def _signed(mxid: str = DAVE, token: str = TOKEN, key: Any = IS_KEY) -> dict[str, Any]:
    return sign_json({"mxid": mxid, "token": token}, "id.example.org", key)


def _tpi_room(v: str, *, public_key: Any = IS_KEY) -> RoomBuilder:
    room = _room(v)
    room.add("m.room.third_party_invite", BOB, {
        "display_name": "d...@e.org",
        "key_validity_url": "https://id.example.org/_matrix/identity/v2/pubkey/isvalid",
        "public_key": encode_verify_key_base64(get_verify_key(public_key)),
    }, TOKEN)
    return room


def _tpi_invite(room: RoomBuilder, tpi: Any, sender: str = BOB, target: str = DAVE) -> Event:
    return room.build("m.room.member", sender,
                      {"membership": "invite", "third_party_invite": tpi}, target)


def _tpi_scenario(bad_tpi: Callable[[], Any], *, sender: str = BOB, ban: bool = False) -> Scenario:
    def build(v: str) -> tuple[Case, Case]:
        room = _tpi_room(v)
        ok = _tpi_invite(room, {"display_name": "d", "signed": _signed()})
        ok_state = dict(room.state)
        if ban:
            room.member(CREATOR, DAVE, "ban")
        bad = _tpi_invite(room, bad_tpi(), sender=sender)
        return (ok, ok_state), (bad, room.state)

    return build


SCENARIOS["membership.invite.tpi.target_banned"] = _tpi_scenario(
    lambda: {"signed": _signed()}, ban=True)
SCENARIOS["membership.invite.tpi.no_signed"] = _tpi_scenario(lambda: {"display_name": "d"})
SCENARIOS["membership.invite.tpi.signed_incomplete"] = _tpi_scenario(
    lambda: {"signed": {k: v for k, v in _signed().items() if k != "token"}})
SCENARIOS["membership.invite.tpi.mxid_mismatch"] = _tpi_scenario(
    lambda: {"signed": _signed(mxid="@eve:third.org")})
SCENARIOS["membership.invite.tpi.no_invite_event"] = _tpi_scenario(
    lambda: {"signed": _signed(token="unknown")})
SCENARIOS["membership.invite.tpi.sender_mismatch"] = _tpi_scenario(
    lambda: {"signed": _signed()}, sender=CREATOR)
SCENARIOS["membership.invite.tpi.bad_signature"] = _tpi_scenario(
    lambda: {"signed": _signed(key=OTHER_KEY)})


# rule id -> (room options, (sender, target, membership) passing, the same rejected)
MEMBER_PAIRS: dict[str, tuple[dict[str, Any], tuple[str, str, str], tuple[str, str, str]]] = {
    "membership.invite.sender_not_joined": ({}, (BOB, DAVE, "invite"), ("@eve:third.org", DAVE, "invite")),
    "membership.invite.target_joined_or_banned": ({}, (BOB, DAVE, "invite"), (BOB, CAROL, "invite")),
    "membership.invite.insufficient_power": ({"pl": {"invite": 50}}, (MOD, DAVE, "invite"), (BOB, DAVE, "invite")),
    "membership.leave.not_member": ({}, (BOB, BOB, "leave"), (DAVE, DAVE, "leave")),
    "membership.leave.sender_not_joined": ({}, (MOD, BOB, "leave"), (DAVE, BOB, "leave")),
    "membership.leave.insufficient_power": ({}, (MOD, BOB, "leave"), (BOB, CAROL, "leave")),
    "membership.ban.sender_not_joined": ({}, (MOD, BOB, "ban"), (DAVE, BOB, "ban")),
    "membership.ban.insufficient_power": ({}, (MOD, BOB, "ban"), (BOB, CAROL, "ban")),
    "membership.knock.sender_not_target": ({"join_rule": "knock"}, (DAVE, DAVE, "knock"), (BOB, DAVE, "knock")),
    "membership.knock.bad_membership": ({"join_rule": "knock"}, (DAVE, DAVE, "knock"), (BOB, BOB, "knock")),
    "membership.unknown": ({}, (BOB, BOB, "leave"), (BOB, BOB, "dance")),
}


def _member_pair_scenario(rule_id: str) -> Scenario:
    options, ok, bad = MEMBER_PAIRS[rule_id]

    def build(v: str) -> tuple[Case, Case]:
        room = _room(v, **options)
        return _pair(room, _member(room, *ok), _member(room, *bad))

    return build


for _rule_id in MEMBER_PAIRS:
    SCENARIOS[_rule_id] = _member_pair_scenario(_rule_id)


@scenario("membership.leave.target_banned")
def _(v: str) -> tuple[Case, Case]:
    room = _room(v, pl={"ban": 70, "kick": 50})
    room.member(CREATOR, DAVE, "ban")
    return _pair(room, _member(room, CREATOR, DAVE, "leave"), _member(room, MOD, DAVE, "leave"))


@scenario("membership.knock.join_rule")
def _(v: str) -> tuple[Case, Case]:
    knock_room = _room(v, join_rule="knock")
    public_room = _room(v)
    return ((_member(knock_room, DAVE, DAVE, "knock"), knock_room.state),
            (_member(public_room, DAVE, DAVE, "knock"), public_room.state))


@scenario("sender_not_joined")
def _(v: str) -> tuple[Case, Case]:
    room = _room(v)
    return _pair(room, room.build("m.room.message", BOB, {"body": "x"}),
                 room.build("m.room.message", DAVE, {"body": "x"}))


@scenario("third_party_invite.insufficient_power")
def _(v: str) -> tuple[Case, Case]:
    room = _room(v, pl={"invite": 50})
    content = {"display_name": "d", "key_validity_url": "u", "public_key": "AAAA"}
    return _pair(room, room.build("m.room.third_party_invite", MOD, content, "t1"),
                 room.build("m.room.third_party_invite", BOB, content, "t1"))


@scenario("required_power_level")
def _(v: str) -> tuple[Case, Case]:
    room = _room(v)
    return _pair(room, room.build("m.room.name", MOD, {"name": "n"}, ""),
                 room.build("m.room.name", BOB, {"name": "n"}, ""))


@scenario("state_key.user_mismatch")
def _(v: str) -> tuple[Case, Case]:
    room = _room(v)
    return _pair(room, room.build("m.custom", MOD, {}, MOD), room.build("m.custom", MOD, {}, BOB))


# --- power levels ---------------------------------------------------------------------------------
def _pl_change(v: str, ok: dict[str, Any], bad: dict[str, Any], *, base: dict[str, Any] | None = None,
               sender: str = MOD) -> tuple[Case, Case]:
    """Two power level changes by `sender` (MOD, power 60) from the same starting content."""
    room = _room(v, pl=base)
    current = dict(room.state[("m.room.power_levels", "")].content)

    def changed(delta: dict[str, Any]) -> Event:
        content = dict(current)
        for key, value in delta.items():
            if isinstance(value, dict) and isinstance(content.get(key), dict):
                content[key] = {**content[key], **value}
            else:
                content[key] = value
        return room.build("m.room.power_levels", sender, content, "")

    return _pair(room, changed(ok), changed(bad))


PL_BASE = {"events": {"m.room.power_levels": 60, "m.room.tombstone": 100}, "kick": 80}


PEER = "@peer:example.org"  # power 60, like MOD, in the users_old scenario
# rule id -> (passing change, rejected change, sender); changes merge into PL_BASE's content.
PL_PAIRS: dict[str, tuple[dict[str, Any], dict[str, Any], str]] = {
    "power_levels.top_level_not_int": ({"ban": 55}, {"ban": "55"}, MOD),
    "power_levels.events_not_int": ({"events": {"m.x": 10}}, {"events": {"m.x": "10"}}, MOD),
    "power_levels.users_invalid": ({"users": {BOB: 10}}, {"users": {"bob": 10}}, MOD),
    "power_levels.users_has_creator": ({"users": {BOB: 10}}, {"users": {CREATOR: 100}}, CREATOR),
    "power_levels.top_level_old": ({"redact": 60}, {"kick": 50}, MOD),
    "power_levels.top_level_new": ({"ban": 60}, {"ban": 61}, MOD),
    "power_levels.events_old": ({"events": {"m.room.name": 10}}, {"events": {"m.room.tombstone": 50}}, MOD),
    "power_levels.events_new": ({"events": {"m.x": 60}}, {"events": {"m.x": 61}}, MOD),
    # Lowering oneself is fine; lowering a peer at the sender's level is not.
    "power_levels.users_old": ({"users": {MOD: 10}}, {"users": {PEER: 10}}, MOD),
    "power_levels.users_new": ({"users": {BOB: 60}}, {"users": {BOB: 61}}, MOD),
}


def _pl_pair_scenario(rule_id: str) -> Scenario:
    ok, bad, sender = PL_PAIRS[rule_id]

    def build(v: str) -> tuple[Case, Case]:
        users = {**default_power_levels(get_room_version(v), CREATOR)["users"], MOD: 60, PEER: 60}
        return _pl_change(v, ok, bad, base={**PL_BASE, "users": users}, sender=sender)

    return build


for _rule_id in PL_PAIRS:
    SCENARIOS[_rule_id] = _pl_pair_scenario(_rule_id)


@scenario("redaction.insufficient_power")
def _(v: str) -> tuple[Case, Case]:
    room = _room(v)
    return _pair(room,
                 room.build("m.room.redaction", BOB, {}, redacts="$mine:example.org"),
                 room.build("m.room.redaction", BOB, {}, redacts="$theirs:other.org"))


# --- the table -----------------------------------------------------------------------------------
def _cases() -> list[Any]:
    out = []
    for rule_id, numbers in RULES.items():
        for family, versions in FAMILIES.items():
            number = _numbers(rule_id, family)
            if number is None:
                continue
            for v in versions:
                out.append(pytest.param(rule_id, v, number, id=f"v{v}-{number}-{rule_id}"))
    return out


def test_every_rule_has_a_scenario() -> None:
    assert set(SCENARIOS) == set(RULES)


@pytest.mark.parametrize("family", FAMILY_ORDER)
def test_numbering_matches_implementation(family: str) -> None:
    for v in FAMILIES[family]:
        expected = {r: _numbers(r, family) for r in RULES if _numbers(r, family) is not None}
        assert dict(rule_numbers(get_room_version(v))) == expected


@pytest.mark.parametrize(("rule_id", "version", "number"), _cases())
def test_rule(rule_id: str, version: str, number: str) -> None:
    (ok_event, ok_ctx), (bad_event, bad_ctx) = SCENARIOS[rule_id](version)
    _run(ok_event, ok_ctx)
    with pytest.raises(AuthError) as info:
        _run(bad_event, bad_ctx)
    assert info.value.rule == f"{number} {rule_id}"
    assert info.value.number == number
    assert info.value.rule_id == rule_id
