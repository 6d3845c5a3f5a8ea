"""The authorisation rules for room versions 1-12, and auth events selection.

Spec: content/rooms/fragments/v1-auth-rules.md (v1, v2), v3-auth-rules.md (v3-v5), v6.md, v7.md,
fragments/v8-auth-rules.md (v8, v9), v10.md, v11.md, v12.md §Authorisation rules, and
server-server-api.md §Auth events selection.

Two entry points, because the pipeline checks an event twice in different ways:
- `check_auth_events_selection(event, auth_events)` is the rule "considering the event's
  auth_events" (rule 2; rule 3 in v12): the cited auth events must be exactly the right kind.
- `check_auth(event, state)` is every other rule, evaluated against a state map: the event's own
  auth events, the state before the event, or the current state (soft failure). State
  resolution calls it in a loop, so it only does dictionary lookups on what it needs.

Every rejection names the rule by its number in that version's list (the numbering shifts between
versions) plus a stable short id, e.g. "5.3.3 membership.join.banned" in v12.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn, Union

from dendrite_lite.events.event import Event, StateKey
from dendrite_lite.events.power_levels import (
    CREATE,
    POWER_LEVELS,
    TOP_LEVEL_DEFAULTS,
    is_valid_user_id,
    named_power_level,
    parse_power_level,
    room_creators,
    user_power_level,
    event_power_level,
)
from dendrite_lite.events.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from dendrite_lite.events.third_party_invite import verify_signed_block

__all__ = [
    "AuthError",
    "check_auth",
    "auth_types_for_event",
    "check_auth_events_selection",
    "rule_numbers",
]

MEMBER = "m.room.member"
JOIN_RULES = "m.room.join_rules"
THIRD_PARTY_INVITE = "m.room.third_party_invite"
ALIASES = "m.room.aliases"
REDACTION = "m.room.redaction"

_CREATE_KEY: StateKey = (CREATE, "")
_PL_KEY: StateKey = (POWER_LEVELS, "")
_JOIN_RULES_KEY: StateKey = (JOIN_RULES, "")


class AuthError(Exception):
    """An event fails the authorisation rules.

    `rule` is "<number> <short id>": the number as written in the room version's rule list (it
    differs between versions for the same rule) and a version-independent id, e.g.
    "4.3.3 membership.join.banned". `number` and `rule_id` give the two halves.
    """

    def __init__(self, rule: str, reason: str) -> None:
        super().__init__(f"auth rule {rule}: {reason}")
        self.rule = rule
        self.reason = reason

    @property
    def number(self) -> str:
        return self.rule.partition(" ")[0]

    @property
    def rule_id(self) -> str:
        return self.rule.partition(" ")[2]


# --- rule numbering ---------------------------------------------------------------------------
# A version's rule list as nested lists: a str is a rejecting rule's id, None a numbered step that
# never rejects (an "allow" or a heading), a tuple (id or None, children) a rule with sub-rules.
_Item = Union[str, None, tuple[Union[str, None], list[Any]]]


def _assign(out: dict[str, str], prefix: str, items: list[_Item]) -> None:
    for i, item in enumerate(items, 1):
        number = f"{prefix}{i}"
        if isinstance(item, tuple):
            if item[0]:
                out[item[0]] = number
            _assign(out, number + ".", item[1])
        elif item:
            out[item] = number


def _membership_rules(rv: RoomVersion) -> list[_Item]:
    join: list[_Item] = [None, "membership.join.sender_not_target", "membership.join.banned", None]
    if rv.restricted_join_rule:
        join.append((None, [None, "membership.join.restricted_authoriser", None]))
    join += [None, "membership.join.not_allowed"]
    tpi: list[_Item] = [
        "membership.invite.tpi.target_banned",
        "membership.invite.tpi.no_signed",
        "membership.invite.tpi.signed_incomplete",
        "membership.invite.tpi.mxid_mismatch",
        "membership.invite.tpi.no_invite_event",
        "membership.invite.tpi.sender_mismatch",
        None,
        "membership.invite.tpi.bad_signature",
    ]
    invite: list[_Item] = [
        (None, tpi),
        "membership.invite.sender_not_joined",
        "membership.invite.target_joined_or_banned",
        None,
        "membership.invite.insufficient_power",
    ]
    leave: list[_Item] = [
        "membership.leave.not_member",
        "membership.leave.sender_not_joined",
        "membership.leave.target_banned",
        None,
        "membership.leave.insufficient_power",
    ]
    ban: list[_Item] = ["membership.ban.sender_not_joined", None, "membership.ban.insufficient_power"]
    rules: list[_Item] = ["membership.malformed"]
    if rv.restricted_join_rule:
        rules.append((None, ["membership.authorised_via.unsigned"]))
    rules += [(None, join), (None, invite), (None, leave), (None, ban)]
    if rv.knock_join_rule:
        knock: list[_Item] = [
            "membership.knock.join_rule",
            "membership.knock.sender_not_target",
            None,
            "membership.knock.bad_membership",
        ]
        rules.append((None, knock))
    rules.append("membership.unknown")
    return rules


def _power_levels_rules(rv: RoomVersion) -> list[_Item]:
    rules: list[_Item] = []
    if rv.enforce_int_power_levels:
        rules += ["power_levels.top_level_not_int", "power_levels.events_not_int"]
    rules.append("power_levels.users_invalid")
    if rv.privileged_creators:
        rules.append("power_levels.users_has_creator")
    rules += [
        None,  # no previous power levels: allow
        (None, ["power_levels.top_level_old", "power_levels.top_level_new"]),
        (None, ["power_levels.events_old"]),
        (None, ["power_levels.events_new"]),
        (None, ["power_levels.users_old"]),
        (None, ["power_levels.users_new"]),
        None,
    ]
    return rules


@functools.cache
def rule_numbers(rv: RoomVersion) -> Mapping[str, str]:
    """Short rule id -> rule number as written in this room version's list of auth rules."""
    create: list[_Item] = ["create.prev_events", "create.room_id", "create.room_version"]
    if not rv.implicit_room_creator:
        create.append("create.no_creator")
    if rv.privileged_creators:
        create.append("create.additional_creators")
    create.append(None)
    top: list[_Item] = [(None, create)]
    if rv.room_id_is_create_event_hash:
        top.append("room_id.not_create_event")
    top.append((None, [
        "auth_events.duplicate",
        "auth_events.unexpected",
        "auth_events.rejected",
        None if rv.room_id_is_create_event_hash else "auth_events.no_create",
        "auth_events.room_id",
    ]))
    top.append("federate")
    if rv.special_case_aliases_auth:
        top.append((None, ["aliases.no_state_key", "aliases.domain", None]))
    top.append((None, _membership_rules(rv)))
    top += [
        "sender_not_joined",
        (None, ["third_party_invite.insufficient_power"]),
        "required_power_level",
        "state_key.user_mismatch",
        (None, _power_levels_rules(rv)),
    ]
    if rv.event_id_in_event:  # v1/v2: the redact level is checked by the auth rules
        top.append((None, [None, None, "redaction.insufficient_power"]))
    top.append(None)
    out: dict[str, str] = {}
    _assign(out, "", top)
    return out


def _reject(rv: RoomVersion, rule_id: str, reason: str) -> NoReturn:
    raise AuthError(f"{rule_numbers(rv)[rule_id]} {rule_id}", reason)


# --- small readers ----------------------------------------------------------------------------
def _domain(identifier: str) -> str:
    return identifier.partition(":")[2]


def _membership(member_event: Event | None) -> str | None:
    if member_event is None:
        return None
    m = member_event.content.get("membership")
    return m if isinstance(m, str) else None


def _join_rule(state: Mapping[StateKey, Event]) -> str:
    ev = state.get(_JOIN_RULES_KEY)
    if ev is None:
        # NOTSPEC: the spec does not say what a missing join_rules event means; like the other
        # homeservers we read it as "invite" (so members can still update their member event).
        return "invite"
    rule = ev.content.get("join_rule")
    return rule if isinstance(rule, str) else "invite"


def _original_creator(create: Event) -> str | None:
    """The user whose join may directly follow the create event."""
    if create.room_version.implicit_room_creator:
        return create.sender
    creator = create.content.get("creator")
    return creator if isinstance(creator, str) else None


# --- check_auth ---------------------------------------------------------------------------------
def check_auth(event: Event, auth_events: Mapping[StateKey, Event]) -> None:
    """Apply the authorisation rules (all but the auth_events selection rule) to `event`.

    `auth_events` is the state to check against, keyed by (type, state_key). It must contain the
    create event, even in v12 where events do not cite it. Raises AuthError.
    """
    rv = event.room_version
    etype = event.type
    if etype == CREATE:
        _check_create(event)
        return
    create = auth_events.get(_CREATE_KEY)
    if rv.room_id_is_create_event_hash:
        if (
            create is None
            or create.rejected_reason is not None
            or not event.room_id.startswith("!")
            or event.room_id[1:] != create.event_id[1:]
        ):
            _reject(rv, "room_id.not_create_event", "room id is not an accepted create event's id")
    elif create is None:
        _reject(rv, "auth_events.no_create", "no m.room.create event")

    if create.content.get("m.federate", True) is False and event.origin != create.origin:
        _reject(rv, "federate", "room is not federated and sender is from another server")

    if etype == ALIASES and rv.special_case_aliases_auth:
        if event.state_key is None:
            _reject(rv, "aliases.no_state_key", "m.room.aliases without state_key")
        if event.state_key != event.origin:
            _reject(rv, "aliases.domain", "m.room.aliases state_key is not the sender's domain")
        return

    power_levels = auth_events.get(_PL_KEY)
    if etype == MEMBER:
        _check_membership(event, auth_events, create, power_levels)
        return

    sender = event.sender
    if _membership(auth_events.get((MEMBER, sender))) != "join":
        _reject(rv, "sender_not_joined", f"{sender} is not joined to the room")
    sender_level = user_power_level(sender, power_levels, create)

    if etype == THIRD_PARTY_INVITE:
        if sender_level < named_power_level("invite", power_levels):
            _reject(rv, "third_party_invite.insufficient_power", "sender below the invite level")
        return

    state_key = event.state_key
    required = event_power_level(etype, state_key, power_levels)
    if required > sender_level:
        _reject(rv, "required_power_level", f"{etype} needs power {required}, sender has {sender_level}")
    if state_key is not None and state_key.startswith("@") and state_key != sender:
        _reject(rv, "state_key.user_mismatch", "state_key is another user's id")

    if etype == POWER_LEVELS:
        _check_power_levels(event, create, power_levels, sender_level)
    elif etype == REDACTION and rv.event_id_in_event:
        _check_v1_redaction(event, power_levels, sender_level)


def _check_create(event: Event) -> None:
    rv = event.room_version
    if event.prev_event_ids:
        _reject(rv, "create.prev_events", "m.room.create has prev_events")
    if rv.room_id_is_create_event_hash:
        if "room_id" in event.pdu:
            _reject(rv, "create.room_id", "m.room.create has a room_id")
    elif _domain(event.room_id) != event.origin:
        _reject(rv, "create.room_id", "room id domain differs from the sender's domain")
    content = event.content
    if "room_version" in content and content["room_version"] not in KNOWN_ROOM_VERSIONS:
        _reject(rv, "create.room_version", f"unknown room version {content['room_version']!r}")
    if not rv.implicit_room_creator and "creator" not in content:
        _reject(rv, "create.no_creator", "m.room.create has no creator")
    if rv.privileged_creators and "additional_creators" in content:
        extra = content["additional_creators"]
        if not isinstance(extra, list) or not all(is_valid_user_id(u) for u in extra):
            _reject(rv, "create.additional_creators", "additional_creators is not a list of user ids")


def _check_membership(
    event: Event,
    state: Mapping[StateKey, Event],
    create: Event,
    power_levels: Event | None,
) -> None:
    rv = event.room_version
    content = event.content
    target = event.state_key
    if target is None or "membership" not in content:
        _reject(rv, "membership.malformed", "m.room.member without state_key or membership")
    if rv.restricted_join_rule and "join_authorised_via_users_server" in content:
        _check_authorised_via_signed(event)
    membership = content["membership"]
    sender = event.sender
    target_membership = _membership(state.get((MEMBER, target)))

    if membership == "join":
        _check_join(event, state, create, power_levels, target_membership)
        return
    if membership == "invite":
        _check_invite(event, state, create, power_levels, target_membership)
        return

    sender_membership = target_membership if sender == target else _membership(state.get((MEMBER, sender)))
    if membership == "leave":
        if sender == target:
            allowed = ("invite", "join", "knock") if rv.knock_join_rule else ("invite", "join")
            if target_membership not in allowed:
                _reject(rv, "membership.leave.not_member", f"cannot leave from {target_membership}")
            return
        if sender_membership != "join":
            _reject(rv, "membership.leave.sender_not_joined", f"{sender} is not joined")
        sender_level = user_power_level(sender, power_levels, create)
        if target_membership == "ban" and sender_level < named_power_level("ban", power_levels):
            _reject(rv, "membership.leave.target_banned", "unbanning needs the ban level")
        target_level = user_power_level(target, power_levels, create)
        if not (sender_level >= named_power_level("kick", power_levels) and target_level < sender_level):
            _reject(rv, "membership.leave.insufficient_power", "sender cannot kick the target")
        return
    if membership == "ban":
        if sender_membership != "join":
            _reject(rv, "membership.ban.sender_not_joined", f"{sender} is not joined")
        sender_level = user_power_level(sender, power_levels, create)
        target_level = user_power_level(target, power_levels, create)
        if not (sender_level >= named_power_level("ban", power_levels) and target_level < sender_level):
            _reject(rv, "membership.ban.insufficient_power", "sender cannot ban the target")
        return
    if membership == "knock" and rv.knock_join_rule:
        join_rule = _join_rule(state)
        if not (
            join_rule == "knock" or (join_rule == "knock_restricted" and rv.knock_restricted_join_rule)
        ):
            _reject(rv, "membership.knock.join_rule", f"join rule {join_rule!r} does not allow knocking")
        if sender != target:
            _reject(rv, "membership.knock.sender_not_target", "cannot knock for another user")
        if sender_membership in ("ban", "invite", "join"):
            _reject(rv, "membership.knock.bad_membership", f"cannot knock from {sender_membership}")
        return
    _reject(rv, "membership.unknown", f"unknown membership {membership!r}")


def _check_authorised_via_signed(event: Event) -> None:
    """v8+: the authorising user's server must have signed the event.

    Only the presence of that server's signature is checked here; whether it verifies is for the
    signature checks performed on receipt (they need the server's keys, so I/O), which must cover
    this server as well as the sender's.
    """
    via = event.content["join_authorised_via_users_server"]
    signatures = event.pdu.get("signatures")
    server = _domain(via) if isinstance(via, str) else ""
    if not server or not isinstance(signatures, dict) or not signatures.get(server):
        _reject(
            event.room_version,
            "membership.authorised_via.unsigned",
            f"not signed by the server of join_authorised_via_users_server {via!r}",
        )


def _check_join(
    event: Event,
    state: Mapping[StateKey, Event],
    create: Event,
    power_levels: Event | None,
    current: str | None,
) -> None:
    rv = event.room_version
    target = event.state_key
    prev = event.prev_event_ids
    if len(prev) == 1 and prev[0] == create.event_id and target == _original_creator(create):
        return
    if event.sender != target:
        _reject(rv, "membership.join.sender_not_target", "cannot join another user")
    if current == "ban":
        _reject(rv, "membership.join.banned", f"{target} is banned")
    join_rule = _join_rule(state)
    if join_rule == "invite" or (join_rule == "knock" and rv.knock_join_rule):
        if current in ("invite", "join"):
            return
        _reject(rv, "membership.join.not_allowed", f"join rule {join_rule!r} needs an invite")
    if (join_rule == "restricted" and rv.restricted_join_rule) or (
        join_rule == "knock_restricted" and rv.knock_restricted_join_rule
    ):
        if current in ("invite", "join"):
            return
        via = event.content.get("join_authorised_via_users_server")
        if (
            not isinstance(via, str)
            or _membership(state.get((MEMBER, via))) != "join"
            or user_power_level(via, power_levels, create) < named_power_level("invite", power_levels)
        ):
            _reject(
                rv,
                "membership.join.restricted_authoriser",
                f"join_authorised_via_users_server {via!r} is not a joined user able to invite",
            )
        return
    if join_rule == "public":
        return
    _reject(rv, "membership.join.not_allowed", f"join rule {join_rule!r} does not allow joining")


def _check_invite(
    event: Event,
    state: Mapping[StateKey, Event],
    create: Event,
    power_levels: Event | None,
    target_membership: str | None,
) -> None:
    rv = event.room_version
    content = event.content
    sender = event.sender
    if "third_party_invite" in content:
        if target_membership == "ban":
            _reject(rv, "membership.invite.tpi.target_banned", "target is banned")
        tpi = content["third_party_invite"]
        signed = tpi.get("signed") if isinstance(tpi, dict) else None
        if not isinstance(signed, dict):
            _reject(rv, "membership.invite.tpi.no_signed", "third_party_invite has no signed block")
        mxid, token = signed.get("mxid"), signed.get("token")
        if not isinstance(mxid, str) or not isinstance(token, str):
            _reject(rv, "membership.invite.tpi.signed_incomplete", "signed lacks mxid or token")
        if mxid != event.state_key:
            _reject(rv, "membership.invite.tpi.mxid_mismatch", "signed.mxid is not the state_key")
        invite_event = state.get((THIRD_PARTY_INVITE, token))
        if invite_event is None:
            _reject(rv, "membership.invite.tpi.no_invite_event", "no m.room.third_party_invite for token")
        if invite_event.sender != sender:
            _reject(rv, "membership.invite.tpi.sender_mismatch", "sender did not send the 3pid invite")
        if not verify_signed_block(signed, invite_event.content):
            _reject(rv, "membership.invite.tpi.bad_signature", "no valid signature from the 3pid keys")
        return
    if _membership(state.get((MEMBER, sender))) != "join":
        _reject(rv, "membership.invite.sender_not_joined", f"{sender} is not joined")
    if target_membership in ("join", "ban"):
        _reject(rv, "membership.invite.target_joined_or_banned", f"target is {target_membership}")
    if user_power_level(sender, power_levels, create) < named_power_level("invite", power_levels):
        _reject(rv, "membership.invite.insufficient_power", "sender below the invite level")


def _check_v1_redaction(event: Event, power_levels: Event | None, sender_level: float) -> None:
    """v1/v2 rule 11: redact level, or the redacted event comes from the redaction's server."""
    if sender_level >= named_power_level("redact", power_levels):
        return
    redacts = event.redacts
    if redacts is not None and _domain(redacts) == _domain(event.event_id):
        return
    _reject(event.room_version, "redaction.insufficient_power", "below the redact level")


# --- m.room.power_levels ------------------------------------------------------------------------
_INT_MAPS = ("events", "notifications")


def _check_power_levels(
    event: Event, create: Event, old: Event | None, sender_level: float
) -> None:
    rv = event.room_version
    content = event.content
    if rv.enforce_int_power_levels:
        for key in TOP_LEVEL_DEFAULTS:
            if key in content and type(content[key]) is not int:
                _reject(rv, "power_levels.top_level_not_int", f"{key} is not an integer")
        for key in _INT_MAPS:
            if key in content:
                value = content[key]
                if not isinstance(value, dict) or any(type(v) is not int for v in value.values()):
                    _reject(rv, "power_levels.events_not_int", f"{key} is not a map of integers")
    users = content.get("users", {})
    if not isinstance(users, dict) or not all(
        is_valid_user_id(u) and parse_power_level(v, rv) is not None for u, v in users.items()
    ):
        _reject(rv, "power_levels.users_invalid", "users is not a map of user ids to integers")
    if rv.privileged_creators:
        for creator in room_creators(create):
            if creator in users:
                _reject(rv, "power_levels.users_has_creator", f"creator {creator} is in users")
    if old is None:
        return
    old_content = old.content

    for key in TOP_LEVEL_DEFAULTS:
        before = _parsed(old_content, key, rv)
        after = _parsed(content, key, rv)
        if before == after:
            continue
        if before is not None and before > sender_level:
            _reject(rv, "power_levels.top_level_old", f"cannot change {key} from {before}")
        if after is not None and after > sender_level:
            _reject(rv, "power_levels.top_level_new", f"cannot set {key} to {after}")

    maps = _INT_MAPS if rv.limit_notifications_power_levels else _INT_MAPS[:1]
    changes = [
        (name, key, before, after)
        for name in maps
        for key, before, after in _map_changes(old_content.get(name), content.get(name), rv)
    ]
    for name, key, before, _ in changes:
        if before is not None and before > sender_level:
            _reject(rv, "power_levels.events_old", f"cannot change {name}[{key}] from {before}")
    for name, key, _, after in changes:
        if after is not None and after > sender_level:
            _reject(rv, "power_levels.events_new", f"cannot set {name}[{key}] to {after}")

    user_changes = list(_map_changes(old_content.get("users"), users, rv))
    for user, before, _ in user_changes:
        if user != event.sender and before is not None and before >= sender_level:
            _reject(rv, "power_levels.users_old", f"cannot change the level of {user} ({before})")
    for user, _, after in user_changes:
        if after is not None and after > sender_level:
            _reject(rv, "power_levels.users_new", f"cannot give {user} level {after}")


def _parsed(content: Mapping[str, Any], key: str, rv: RoomVersion) -> int | None:
    # An absent or (before v10) unparsable value counts as not set.
    value = content.get(key)
    return None if value is None else parse_power_level(value, rv)


def _map_changes(
    before: Any, after: Any, rv: RoomVersion
) -> list[tuple[str, int | None, int | None]]:
    """Entries added, changed or removed between two {key: level} maps (old keys first)."""
    old_map: Mapping[str, Any] = before if isinstance(before, dict) else {}
    new_map: Mapping[str, Any] = after if isinstance(after, dict) else {}
    changes = []
    for key, value in old_map.items():
        new_value = new_map.get(key)
        if new_value is value or (type(value) is type(new_value) is int and new_value == value):
            continue  # the common case in a big room: untouched entries, no parsing needed
        old_v = parse_power_level(value, rv)
        new_v = None if new_value is None else parse_power_level(new_value, rv)
        if old_v != new_v:
            changes.append((key, old_v, new_v))
    for key, new_value in new_map.items():
        if key not in old_map:
            new_v = parse_power_level(new_value, rv)
            if new_v is not None:
                changes.append((key, None, new_v))
    return changes


# --- auth events selection ----------------------------------------------------------------------
def auth_types_for_event(
    room_version: RoomVersion,
    event_type: str,
    state_key: str | None,
    sender: str,
    content: Mapping[str, Any],
) -> list[StateKey]:
    """The (type, state_key) pairs an event's auth_events should cite (§Auth events selection).

    Empty for m.room.create. In v12 the create event is not selected: the room id stands for it.
    """
    if event_type == CREATE:
        return []
    keys: list[StateKey] = []
    if not room_version.room_id_is_create_event_hash:
        keys.append(_CREATE_KEY)
    keys.append(_PL_KEY)
    keys.append((MEMBER, sender))
    if event_type != MEMBER or state_key is None:
        return keys
    if state_key != sender:
        keys.append((MEMBER, state_key))
    membership = content.get("membership")
    if membership in ("join", "invite") or (membership == "knock" and room_version.knock_join_rule):
        keys.append(_JOIN_RULES_KEY)
    if membership == "invite":
        tpi = content.get("third_party_invite")
        signed = tpi.get("signed") if isinstance(tpi, dict) else None
        token = signed.get("token") if isinstance(signed, dict) else None
        if isinstance(token, str):
            keys.append((THIRD_PARTY_INVITE, token))
    elif membership == "join" and room_version.restricted_join_rule:
        via = content.get("join_authorised_via_users_server")
        if isinstance(via, str) and (MEMBER, via) not in keys:
            keys.append((MEMBER, via))
    return keys


def check_auth_events_selection(event: Event, auth_events: Sequence[Event]) -> None:
    """Rule "considering the event's auth_events" (2.x; 3.x in v12) on the cited auth events.

    `auth_events` are the events the event's auth_events ids refer to (with rejected_reason set
    for rejected ones). m.room.create has none to check.
    """
    rv = event.room_version
    if event.type == CREATE:
        return
    allowed = auth_types_for_event(rv, event.type, event.state_key, event.sender, event.content)
    seen: set[tuple[str, str | None]] = set()
    has_create = False
    for auth_event in auth_events:
        key = (auth_event.type, auth_event.state_key)
        if key in seen:
            _reject(rv, "auth_events.duplicate", f"two auth events for {key}")
        seen.add(key)
    for auth_event in auth_events:
        key = (auth_event.type, auth_event.state_key)
        if key not in allowed:  # also catches non-state events (state_key None)
            _reject(rv, "auth_events.unexpected", f"auth event {auth_event.event_id} for {key}")
        has_create = has_create or key == _CREATE_KEY
    for auth_event in auth_events:
        if auth_event.rejected_reason is not None:
            _reject(rv, "auth_events.rejected", f"auth event {auth_event.event_id} was rejected")
    if not has_create and not rv.room_id_is_create_event_hash:
        _reject(rv, "auth_events.no_create", "no m.room.create among the auth events")
    for auth_event in auth_events:
        if auth_event.room_id != event.room_id:
            _reject(rv, "auth_events.room_id", f"auth event {auth_event.event_id} is in another room")
