"""Auth rule edge cases the one-rule-one-pair table does not pin down: boundaries (equal power),
version differences, creators, third-party invite key encodings, stringy/floaty power levels."""

from __future__ import annotations

import base64
import math
from typing import Any

import pytest
from signedjson.key import generate_signing_key, get_verify_key
from signedjson.sign import sign_json

from dendrite_lite.events.auth import AuthError, check_auth, check_auth_events_selection
from dendrite_lite.events.event import Event
from dendrite_lite.events.room_versions import get_room_version
from tests.helpers import RoomBuilder, default_power_levels, make_event, make_room

CREATOR = "@creator:example.org"
BOB = "@bob:example.org"
CAROL = "@carol:other.org"
MOD = "@mod:example.org"
PEER = "@peer:example.org"
DAVE = "@dave:third.org"


def _room(v: str, *, join_rule: str = "public", members: tuple[str, ...] = (BOB, CAROL, MOD, PEER),
          create_content: dict[str, Any] | None = None, **pl: Any) -> RoomBuilder:
    content = default_power_levels(get_room_version(v), CREATOR)
    content["users"] = {**content["users"], MOD: 60, PEER: 60}
    content.update(pl)
    return make_room(v, CREATOR, join_rule=join_rule, power_levels=content, members=members,
                     create_content=create_content)


def _rejects(event: Event, state: Any, rule_id: str) -> None:
    with pytest.raises(AuthError) as info:
        check_auth(event, state)
    assert info.value.rule_id == rule_id, info.value


def _member(room: RoomBuilder, sender: str, target: str, membership: str, **c: Any) -> Event:
    return room.build("m.room.member", sender, {"membership": membership, **c}, target)


# --- power boundaries ----------------------------------------------------------------------------
@pytest.mark.parametrize("membership", ["leave", "ban"])
@pytest.mark.parametrize("v", ["1", "10", "12"])
def test_cannot_kick_or_ban_an_equal(v: str, membership: str) -> None:
    room = _room(v)
    rule = f"membership.{membership}.insufficient_power"
    _rejects(_member(room, MOD, PEER, membership), room.state, rule)
    check_auth(_member(room, MOD, BOB, membership), room.state)


def test_unban_needs_kick_level_too() -> None:
    room = _room("10", ban=50, kick=70)
    room.member(CREATOR, DAVE, "ban")
    # MOD (60) passes the ban level check but is below the kick level.
    _rejects(_member(room, MOD, DAVE, "leave"), room.state, "membership.leave.insufficient_power")
    check_auth(_member(room, CREATOR, DAVE, "leave"), room.state)


@pytest.mark.parametrize("v", ["1", "10"])
def test_own_entry_can_be_lowered_and_peers_set_to_own_level(v: str) -> None:
    room = _room(v, events={"m.room.power_levels": 60})
    users = dict(room.state[("m.room.power_levels", "")].content["users"])
    pl = dict(room.state[("m.room.power_levels", "")].content)
    check_auth(room.build("m.room.power_levels", MOD, {**pl, "users": {**users, MOD: 0}}, ""),
               room.state)
    check_auth(room.build("m.room.power_levels", MOD, {**pl, "users": {**users, BOB: 60}}, ""),
               room.state)
    # Removing a peer's entry counts as changing it.
    del users[PEER]
    _rejects(room.build("m.room.power_levels", MOD, {**pl, "users": users}, ""), room.state,
             "power_levels.users_old")


def test_first_power_levels_event_is_allowed_without_comparison() -> None:
    room = make_room("10", CREATOR, power_levels=None, join_rule=None)
    state = {k: e for k, e in room.state.items() if k[0] != "m.room.power_levels"}
    pl = make_event("10", "m.room.power_levels", CREATOR, {"users": {CREATOR: 1000},
                    "users_default": 500}, "", room_id=room.room_id)
    check_auth(pl, state)


# --- notifications (v6+) ---------------------------------------------------------------------------
@pytest.mark.parametrize(("v", "checked"), [("3", False), ("5", False), ("6", True), ("10", True)])
def test_notifications_room_limited_from_v6(v: str, checked: bool) -> None:
    room = _room(v, events={"m.room.power_levels": 60}, notifications={"room": 50})
    pl = dict(room.state[("m.room.power_levels", "")].content)
    event = room.build("m.room.power_levels", MOD, {**pl, "notifications": {"room": 80}}, "")
    if checked:
        _rejects(event, room.state, "power_levels.events_new")
    else:
        check_auth(event, room.state)


# --- stringy / floaty power levels ----------------------------------------------------------------
@pytest.mark.parametrize("v", ["1", "5", "6", "9"])
def test_stringy_power_levels_accepted_before_v10(v: str) -> None:
    room = _room(v, users={CREATOR: "100", MOD: " +60 ", PEER: "060"}, state_default="50",
                 events={"m.room.power_levels": "60"})
    # MOD's stringy 60 counts as 60: enough for the name (state_default "50") ...
    check_auth(room.build("m.room.name", MOD, {"name": "n"}, ""), room.state)
    # ... and the stringy PEER 60 is equal, so MOD cannot change it.
    pl = dict(room.state[("m.room.power_levels", "")].content)
    users = {**pl["users"], PEER: 10}
    _rejects(room.build("m.room.power_levels", MOD, {**pl, "users": users}, ""), room.state,
             "power_levels.users_old")
    # Rewriting "060" as 60 is no change at all.
    check_auth(room.build("m.room.power_levels", MOD, {**pl, "users": {**pl["users"], PEER: 60}}, ""),
               room.state)


@pytest.mark.parametrize("v", ["1", "5"])
def test_floaty_power_levels_truncate_before_v6(v: str) -> None:
    room = _room(v, users={CREATOR: 100, MOD: 60.9, PEER: 59.99})
    check_auth(_member(room, MOD, PEER, "ban"), room.state)  # 60 > 59
    pl = dict(room.state[("m.room.power_levels", "")].content)
    bad = room.build("m.room.power_levels", CREATOR, {**pl, "users": {BOB: math.inf}}, "")
    _rejects(bad, room.state, "power_levels.users_invalid")


@pytest.mark.parametrize("v", ["10", "11", "12"])
def test_stringy_power_levels_rejected_from_v10(v: str) -> None:
    room = _room(v)
    pl = dict(room.state[("m.room.power_levels", "")].content)
    sender = CREATOR
    _rejects(room.build("m.room.power_levels", sender, {**pl, "users": {BOB: "10"}}, ""),
             room.state, "power_levels.users_invalid")
    _rejects(room.build("m.room.power_levels", sender, {**pl, "notifications": {"room": "10"}}, ""),
             room.state, "power_levels.events_not_int")
    _rejects(room.build("m.room.power_levels", sender, {**pl, "events": []}, ""),
             room.state, "power_levels.events_not_int")
    _rejects(room.build("m.room.power_levels", sender, {**pl, "kick": 5.0}, ""),
             room.state, "power_levels.top_level_not_int")
    _rejects(room.build("m.room.power_levels", sender, {**pl, "kick": True}, ""),
             room.state, "power_levels.top_level_not_int")


# --- creators ---------------------------------------------------------------------------------------
def test_creator_join_directly_after_create() -> None:
    for v, creator_field in (("10", True), ("11", False), ("12", False)):
        rv = get_room_version(v)
        content = {"creator": CREATOR} if creator_field else {}
        create = make_event(rv, "m.room.create", CREATOR, content, "", room_id="!r:example.org")
        room_id = create.room_id
        state = {("m.room.create", ""): create}

        def join(user: str) -> Event:
            return make_event(rv, "m.room.member", user, {"membership": "join"}, user,
                              room_id=room_id, prev_events=[create], auth_events=[create])

        check_auth(join(CREATOR), state)
        # Anyone else in that position finds no join rules (read as "invite") and no invite.
        with pytest.raises(AuthError) as info:
            check_auth(join(BOB), state)
        assert info.value.rule_id == "membership.join.not_allowed"


def test_v11_creator_is_the_sender_not_content_creator() -> None:
    rv = get_room_version("11")
    create = make_event(rv, "m.room.create", CREATOR, {"creator": BOB}, "", room_id="!r:example.org")
    state = {("m.room.create", ""): create}
    join_bob = make_event(rv, "m.room.member", BOB, {"membership": "join"}, BOB,
                          room_id=create.room_id, prev_events=[create])
    with pytest.raises(AuthError):
        check_auth(join_bob, state)


def test_v12_additional_creators_have_infinite_power() -> None:
    room = _room("12", create_content={"additional_creators": [BOB]}, users={MOD: 60, PEER: 60})
    pl = dict(room.state[("m.room.power_levels", "")].content)
    # BOB (no entry in users) can change anything, including giving huge levels.
    check_auth(room.build("m.room.power_levels", BOB,
                          {**pl, "users": {MOD: 9_000_000, PEER: 0}, "ban": 1000}, ""), room.state)
    check_auth(_member(room, BOB, MOD, "ban"), room.state)
    # Nobody can kick or ban a creator, not even another creator.
    _rejects(_member(room, BOB, CREATOR, "ban"), room.state, "membership.ban.insufficient_power")
    # An additional creator cannot be listed in users either.
    _rejects(room.build("m.room.power_levels", CREATOR, {**pl, "users": {BOB: 100}}, ""),
             room.state, "power_levels.users_has_creator")


def test_v12_rejected_create_event() -> None:
    room = _room("12")
    create = room.create
    rejected = Event(create.pdu, create.room_version, create.event_id, room_id=create.room_id,
                     rejected_reason="bad")
    event = room.build("m.room.message", BOB, {"body": "x"})
    _rejects(event, {**room.state, ("m.room.create", ""): rejected}, "room_id.not_create_event")


@pytest.mark.parametrize("value", ["@bob:example.org", [5], ["@bob:example.org", "bob"]])
def test_v12_additional_creators_must_be_user_id_list(value: Any) -> None:
    create = make_event("12", "m.room.create", CREATOR, {"additional_creators": value}, "")
    with pytest.raises(AuthError) as info:
        check_auth(create, {})
    assert info.value.rule == "1.4 create.additional_creators"


# --- membership transitions across versions ---------------------------------------------------------
@pytest.mark.parametrize("v", ["1", "6", "7", "10", "12"])
def test_rejoin_and_self_leave_transitions(v: str) -> None:
    room = _room(v, join_rule="invite")
    check_auth(_member(room, BOB, BOB, "join", displayname="Bob"), room.state)  # join -> join
    room.member(CREATOR, DAVE, "invite")
    check_auth(_member(room, DAVE, DAVE, "leave"), room.state)  # reject an invite
    room.member(CREATOR, "@eve:third.org", "ban")
    _rejects(_member(room, "@eve:third.org", "@eve:third.org", "leave"), room.state,
             "membership.leave.not_member")


@pytest.mark.parametrize(("v", "allowed"), [("6", False), ("7", True), ("10", True)])
def test_knock_only_from_v7(v: str, allowed: bool) -> None:
    room = _room(v, join_rule="knock")
    knock = _member(room, DAVE, DAVE, "knock")
    if allowed:
        check_auth(knock, room.state)
        room.append(knock)
        check_auth(_member(room, DAVE, DAVE, "leave"), room.state)  # retract a knock
        check_auth(_member(room, BOB, DAVE, "invite"), room.state)  # accept a knock
    else:
        _rejects(knock, room.state, "membership.unknown")
        # Before v7, a "knock" join rule lets nobody in.
        _rejects(_member(room, DAVE, DAVE, "join"), room.state, "membership.join.not_allowed")


@pytest.mark.parametrize(("v", "allowed"), [("8", False), ("9", False), ("10", True), ("12", True)])
def test_knock_restricted_from_v10(v: str, allowed: bool) -> None:
    room = _room(v, join_rule="knock_restricted")
    knock = _member(room, DAVE, DAVE, "knock")
    sigs = {"third.org": {"ed25519:a": "x"}, "example.org": {"ed25519:a": "x"}}
    join = room.build("m.room.member", DAVE,
                      {"membership": "join", "join_authorised_via_users_server": MOD}, DAVE,
                      signatures=sigs)
    if allowed:
        check_auth(knock, room.state)
        check_auth(join, room.state)
    else:
        _rejects(knock, room.state, "membership.knock.join_rule")
        _rejects(join, room.state, "membership.join.not_allowed")


def test_restricted_join_when_invited_needs_no_authoriser() -> None:
    room = _room("9", join_rule="restricted")
    room.member(BOB, DAVE, "invite")
    check_auth(_member(room, DAVE, DAVE, "join"), room.state)
    # Not invited and no authoriser at all.
    _rejects(_member(room, "@eve:third.org", "@eve:third.org", "join"), room.state,
             "membership.join.restricted_authoriser")


def test_restricted_authoriser_must_be_joined() -> None:
    room = _room("10", join_rule="restricted")
    room.member(MOD, MOD, "leave")
    sigs = {"third.org": {"ed25519:a": "x"}, "example.org": {"ed25519:a": "x"}}
    join = room.build("m.room.member", DAVE,
                      {"membership": "join", "join_authorised_via_users_server": MOD}, DAVE,
                      signatures=sigs)
    _rejects(join, room.state, "membership.join.restricted_authoriser")


def test_restricted_join_rule_unknown_before_v8() -> None:
    room = _room("7", join_rule="restricted")
    _rejects(_member(room, DAVE, DAVE, "join"), room.state, "membership.join.not_allowed")


# --- redactions ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("v", "checked"), [("1", True), ("2", True), ("3", False), ("11", False)])
def test_redaction_domain_rule_only_in_v1_v2(v: str, checked: bool) -> None:
    room = _room(v)
    other = room.build("m.room.redaction", BOB, {}, redacts="$theirs:other.org")
    if checked:
        _rejects(other, room.state, "redaction.insufficient_power")
        check_auth(room.build("m.room.redaction", MOD, {}, redacts="$theirs:other.org"), room.state)
    else:
        check_auth(other, room.state)  # deferred to the redaction handling checks


def test_redaction_level_via_events_in_v3() -> None:
    room = _room("3", events={"m.room.redaction": 40})
    _rejects(room.build("m.room.redaction", BOB, {}, redacts="$x"), room.state,
             "required_power_level")


# --- federate, aliases, state keys --------------------------------------------------------------------
def test_unfederated_room_allows_creator_server() -> None:
    room = _room("10", create_content={"m.federate": False})
    check_auth(room.build("m.room.message", MOD, {"body": "x"}), room.state)
    _rejects(_member(room, DAVE, DAVE, "join"), room.state, "federate")


def test_aliases_special_case_only_v1_to_v5() -> None:
    for v, special in (("5", True), ("6", False)):
        room = _room(v)
        event = room.build("m.room.aliases", DAVE, {"aliases": []}, "third.org")
        if special:
            check_auth(event, room.state)
        else:
            _rejects(event, room.state, "sender_not_joined")


def test_state_key_may_be_the_senders_own_id() -> None:
    room = _room("10")
    check_auth(room.build("m.custom", MOD, {}, MOD), room.state)
    _rejects(room.build("m.custom", MOD, {}, "@"), room.state, "state_key.user_mismatch")


# --- third-party invites: key encodings ------------------------------------------------------------
IS_KEY = generate_signing_key("0")


def _tpi_check(v: str, invite_content: dict[str, Any], signed: dict[str, Any]) -> None:
    room = _room(v)
    room.add("m.room.third_party_invite", BOB, invite_content, "tok")
    invite = room.build("m.room.member", BOB,
                        {"membership": "invite", "third_party_invite": {"signed": signed}}, DAVE)
    check_auth(invite, room.state)


def _raw_key() -> bytes:
    return bytes(get_verify_key(IS_KEY))


def _signed(**extra: Any) -> dict[str, Any]:
    return sign_json({"mxid": DAVE, "token": "tok", **extra}, "id.example.org", IS_KEY)


@pytest.mark.parametrize("encode", [
    lambda b: base64.b64encode(b).decode().rstrip("="),
    lambda b: base64.urlsafe_b64encode(b).decode().rstrip("="),
    lambda b: base64.b64encode(b).decode(),  # padded, tolerated
])
def test_third_party_invite_key_encodings(encode: Any) -> None:
    _tpi_check("10", {"public_key": encode(_raw_key())}, _signed())


def test_third_party_invite_key_in_public_keys_list() -> None:
    other = base64.b64encode(bytes(get_verify_key(generate_signing_key("9")))).decode().rstrip("=")
    mine = base64.urlsafe_b64encode(_raw_key()).decode().rstrip("=")
    _tpi_check("12", {"public_key": other,
                      "public_keys": [{"public_key": other}, {"public_key": mine}]}, _signed())


def test_third_party_invite_tampered_block_fails() -> None:
    signed = _signed()
    signed["mxid"] = DAVE  # unchanged: still valid
    signed["extra"] = "added after signing"
    with pytest.raises(AuthError) as info:
        _tpi_check("10", {"public_key": base64.b64encode(_raw_key()).decode()}, signed)
    assert info.value.rule_id == "membership.invite.tpi.bad_signature"


def test_third_party_invite_no_usable_keys() -> None:
    with pytest.raises(AuthError) as info:
        _tpi_check("10", {"public_key": "!!not base64!!", "public_keys": "nope"}, _signed())
    assert info.value.rule == "4.4.1.8 membership.invite.tpi.bad_signature"


# --- auth events selection -------------------------------------------------------------------------------
def test_selection_restricted_join_cites_authoriser() -> None:
    for v, ok in (("8", True), ("7", False)):
        room = _room(v, join_rule="invite")
        mod_member = room.state[("m.room.member", MOD)]
        join = room.build("m.room.member", DAVE,
                          {"membership": "join", "join_authorised_via_users_server": MOD}, DAVE)
        by_id = {e.event_id: e for e in room.events}
        auth = [by_id[i] for i in join.auth_event_ids]
        assert (mod_member in auth) is ok
        if ok:
            check_auth_events_selection(join, auth)
        else:
            with pytest.raises(AuthError) as info:
                check_auth_events_selection(join, [*auth, mod_member])
            assert info.value.rule == "2.2 auth_events.unexpected"


def test_selection_non_state_auth_event_is_unexpected() -> None:
    room = _room("10")
    msg = room.add("m.room.message", BOB, {"body": "x"})
    event = room.build("m.room.message", BOB, {"body": "y"})
    by_id = {e.event_id: e for e in room.events}
    with pytest.raises(AuthError) as info:
        check_auth_events_selection(event, [*(by_id[i] for i in event.auth_event_ids), msg])
    assert info.value.rule_id == "auth_events.unexpected"


def test_check_auth_does_not_touch_state() -> None:
    room = _room("12")
    before = dict(room.state)
    contents = {k: dict(e.content) for k, e in room.state.items()}
    pl = dict(room.state[("m.room.power_levels", "")].content)
    check_auth(room.build("m.room.power_levels", CREATOR, {**pl, "ban": 10}, ""), room.state)
    assert room.state == before
    assert {k: dict(e.content) for k, e in room.state.items()} == contents
