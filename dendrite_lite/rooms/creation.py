"""POST /createRoom semantics: which events a new room starts with, in the spec's order.

Spec: data/api/client-server/create_room.yaml. The events go through the ordinary pipeline (so the
auth rules check every one, e.g. an initial_state the creator may not send fails the request) and
are persisted in one transaction: a room either exists completely or not at all.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.events.ids import server_name_of
from dendrite_lite.events.room_versions import (
    DEFAULT_ROOM_VERSION,
    RoomVersion,
    UnsupportedRoomVersion,
    get_room_version,
)
from dendrite_lite.request_body import optional_field
from dendrite_lite.rooms.pipeline import EventSpec, PersistedEvent, RoomPipeline
from dendrite_lite.users.identity_server import ThreepidInvite, parse_threepid_invite

__all__ = ["CreateRoomRequest", "PRESETS", "parse_create_room", "create_room", "default_power_levels"]

# preset -> (join_rule, history_visibility, guest_access or None for no event). public_chat
# sends no m.room.guest_access: its absence means "forbidden" (the event's schema), so the room
# behaves the same, and clients and SyTest that compare a new room's state expect Synapse's set.
PRESETS: dict[str, tuple[str, str, str | None]] = {
    "private_chat": ("invite", "shared", "can_join"),
    "trusted_private_chat": ("invite", "shared", "can_join"),
    "public_chat": ("public", "shared", None),
}


@dataclass(frozen=True, slots=True)
class CreateRoomRequest:
    # None: the body names none, and create_room takes the server's (server.default_room_version).
    room_version: RoomVersion | None = None
    preset: str = "private_chat"
    visibility: str = "private"
    name: str | None = None
    topic: str | None = None
    room_alias_name: str | None = None
    invite: tuple[str, ...] = ()
    invite_3pid: tuple[ThreepidInvite, ...] = ()
    is_direct: bool = False
    initial_state: tuple[tuple[str, str, Mapping[str, Any]], ...] = ()
    creation_content: Mapping[str, Any] = field(default_factory=dict)
    power_level_content_override: Mapping[str, Any] | None = None


def _bad(msg: str) -> MatrixError:
    return MatrixError(Errcode.BAD_JSON, msg)


def parse_create_room(body: Mapping[str, Any]) -> CreateRoomRequest:
    """Validate a /createRoom body (400 M_BAD_JSON / M_UNSUPPORTED_ROOM_VERSION on bad input)."""
    version: RoomVersion | None = None
    room_version = optional_field(body, "room_version", "string")
    if room_version is not None:
        try:
            version = get_room_version(room_version)
        except UnsupportedRoomVersion as e:
            raise MatrixError(Errcode.UNSUPPORTED_ROOM_VERSION, str(e)) from None
    visibility = body.get("visibility", "private")
    if visibility not in ("public", "private"):
        raise _bad("visibility must be 'public' or 'private'")
    # A wrong-typed preset must not reach the dict lookup: [null, null] is unhashable (a 500).
    preset = optional_field(body, "preset", "string") or (
        "public_chat" if visibility == "public" else "private_chat"
    )
    if preset not in PRESETS:
        # Synapse answers M_BAD_JSON here too (handlers/room.py), not M_INVALID_PARAM.
        raise _bad(f"unknown preset {preset!r}")
    invite = body.get("invite", [])
    if not isinstance(invite, list) or not all(isinstance(u, str) and u.startswith("@") for u in invite):
        raise _bad("invite must be a list of user ids")
    invite_3pid = []
    for i, item in enumerate(optional_field(body, "invite_3pid", "array") or []):
        if not isinstance(item, dict):
            raise _bad("invite_3pid entries must be objects")
        invite_3pid.append(parse_threepid_invite(item, f"invite_3pid[{i}]."))
    initial: list[tuple[str, str, Mapping[str, Any]]] = []
    raw_initial = body.get("initial_state", [])
    if not isinstance(raw_initial, list):
        raise _bad("initial_state must be a list")
    for item in raw_initial:
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            raise _bad("initial_state entries need a string type")
        state_key = item.get("state_key", "")
        content = item.get("content")
        if not isinstance(state_key, str) or not isinstance(content, dict):
            raise _bad("initial_state entries need a string state_key and an object content")
        initial.append((item["type"], state_key, content))
    creation_content = body.get("creation_content", {})
    override = body.get("power_level_content_override")
    if not isinstance(creation_content, dict):
        raise _bad("creation_content must be an object")
    if override is not None and not isinstance(override, dict):
        raise _bad("power_level_content_override must be an object")
    is_direct = body.get("is_direct", False)
    if not isinstance(is_direct, bool):
        raise _bad("is_direct must be a boolean")
    return CreateRoomRequest(
        room_version=version,
        preset=preset,
        visibility=visibility,
        name=optional_field(body, "name", "string"),
        topic=optional_field(body, "topic", "string"),
        room_alias_name=optional_field(body, "room_alias_name", "string"),
        invite=tuple(dict.fromkeys(invite)),
        invite_3pid=tuple(invite_3pid),
        is_direct=is_direct,
        initial_state=tuple(initial),
        creation_content=creation_content,
        power_level_content_override=override,
    )


def default_power_levels(
    rv: RoomVersion, creator: str, trusted_invitees: Sequence[str] = ()
) -> dict[str, Any]:
    users: dict[str, int] = {}
    if not rv.privileged_creators:
        users[creator] = 100
        for user in trusted_invitees:
            users[user] = 100
    return {
        "ban": 50,
        "events": {
            "m.room.name": 50,
            "m.room.power_levels": 100,
            "m.room.history_visibility": 100,
            "m.room.canonical_alias": 50,
            "m.room.avatar": 50,
            # v12: tombstone must be above state_default (create_room.yaml), since creators,
            # not admins, should decide to upgrade.
            "m.room.tombstone": 150 if rv.privileged_creators else 100,
            "m.room.server_acl": 100,
            "m.room.encryption": 100,
        },
        "events_default": 0,
        "invite": 0,
        "kick": 50,
        "notifications": {"room": 50},
        "redact": 50,
        "state_default": 50,
        "users": users,
        "users_default": 0,
    }


def _create_content(req: CreateRoomRequest, creator: str) -> dict[str, Any]:
    content = dict(req.creation_content)
    rv = req.room_version
    content["room_version"] = rv.identifier
    if rv.implicit_room_creator:
        content.pop("creator", None)
    else:
        content["creator"] = creator
    if rv.privileged_creators and req.preset == "trusted_private_chat":
        extra = content.get("additional_creators", [])
        if not isinstance(extra, list):
            raise _bad("creation_content.additional_creators must be a list")
        content["additional_creators"] = list(dict.fromkeys([*extra, *req.invite]))
    return content


def _following(
    req: CreateRoomRequest,
    creator: str,
    alias: str | None,
    profiles: Mapping[str, Mapping[str, str]] | None = None,
    server_name: str | None = None,
) -> list[EventSpec]:
    rv = req.room_version
    profiles = profiles or {}
    trusted = req.invite if req.preset == "trusted_private_chat" else ()
    power = default_power_levels(rv, creator, trusted)
    if req.power_level_content_override:
        power.update(req.power_level_content_override)
    join_rule, history, guest = PRESETS[req.preset]

    # Later sources override earlier ones for the same (type, state_key) but keep the spec's order
    # of first appearance: preset < initial_state < name/topic.
    state: dict[tuple[str, str], Mapping[str, Any]] = {}
    if alias is not None:
        state[("m.room.canonical_alias", "")] = {"alias": alias}
    state[("m.room.join_rules", "")] = {"join_rule": join_rule}
    state[("m.room.history_visibility", "")] = {"history_visibility": history}
    if guest is not None:
        state[("m.room.guest_access", "")] = {"guest_access": guest}
    for event_type, state_key, content in req.initial_state:
        state[(event_type, state_key)] = content
    if req.name is not None:
        state[("m.room.name", "")] = {"name": req.name}
    if req.topic is not None:
        state[("m.room.topic", "")] = {
            "topic": req.topic,
            "m.topic": [{"mimetype": "text/plain", "body": req.topic}],
        }

    specs = [
        EventSpec(creator, "m.room.member", {"membership": "join", **profiles.get(creator, {})}, creator),
        EventSpec(creator, "m.room.power_levels", power, ""),
    ]
    specs += [EventSpec(creator, t, c, sk) for (t, sk), c in state.items()]
    # Users of other servers are invited after creation, through their server (/invite): it
    # must sign their invite event, and nothing else would tell it about the room.
    local_invitees = [u for u in req.invite if server_name is None or server_name_of(u) == server_name]
    for invitee in local_invitees:
        content: dict[str, Any] = {"membership": "invite", **profiles.get(invitee, {})}
        if req.is_direct:
            content["is_direct"] = True
        specs.append(EventSpec(creator, "m.room.member", content, invitee))
    return specs


async def create_room(
    pipeline: RoomPipeline,
    *,
    server_name: str,
    creator: str,
    request: CreateRoomRequest,
    alias: str | None = None,
    profiles: Mapping[str, Mapping[str, str]] | None = None,
    default_version: RoomVersion = DEFAULT_ROOM_VERSION,
) -> tuple[str, list[PersistedEvent]]:
    """Create the room; `alias` is the full canonical alias the caller has reserved, if any;
    `profiles` (user -> displayname/avatar_url) go into the creator's and invitees' member events;
    `default_version` is the room version when the request names none.

    Auth failures of the implied events are the request's fault: 400 M_INVALID_ROOM_STATE.
    """
    if request.room_version is None:
        request = replace(request, room_version=default_version)
    rv = request.room_version
    assert rv is not None
    room_id = None if rv.room_id_is_create_event_hash else f"!{secrets.token_urlsafe(18)}:{server_name}"
    try:
        return await pipeline.create_room(
            rv,
            creator,
            _create_content(request, creator),
            lambda _room_id: _following(request, creator, alias, profiles, server_name),
            room_id=room_id,
            is_public=request.visibility == "public",
        )
    except MatrixError as e:
        if e.errcode == Errcode.FORBIDDEN:
            raise MatrixError(Errcode.INVALID_ROOM_STATE, f"the requested initial state is not allowed: {e.error}") from None
        raise
