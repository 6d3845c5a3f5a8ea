"""POST /rooms/{roomId}/upgrade (modules/room_upgrades.md §Server behaviour, room_upgrades.yaml).

1. the requester must be joined and allowed to send m.room.tombstone in the old room;
2. the replacement room's create event carries `predecessor` and the old room's `type`;
3. transferable state is copied (power levels, join rules, history visibility, guest access,
   name, topic, avatar, encryption, server ACL) and so are bans; other members are not;
4. local aliases move to the new room, and the canonical alias with them;
5. the old room gets the tombstone, then power levels that stop ordinary sending and inviting;
6. local members' tags and m.direct entries for the old room are copied to the new one, as
   Synapse does, so the room keeps its place in their room list.

Before v12 the new room's `predecessor.event_id` is the tombstone, as Synapse sends it (SyTest
checks it; the spec only says "the last known event"): the tombstone is sent first, after a dry
run of the new room's creation, so a tombstone never names a room that failed to be created.
From v12 the new room's id is its create event's hash, so the new room comes first and its
predecessor has no event id (room_upgrades.md, v1.16).
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.events.ids import is_valid_user_id, server_name_of
from dendrite_lite.events.room_versions import RoomVersion, UnsupportedRoomVersion, get_room_version
from dendrite_lite.rooms.access import RoomSnapshot, load_current
from dendrite_lite.rooms.pipeline import EventSpec, PersistedEvent, RoomPipeline
from dendrite_lite.storage import Storage
from dendrite_lite.storage import aliases as aliases_table
from dendrite_lite.storage import rooms as rooms_table
from dendrite_lite.users.account_data import AccountDataService
from dendrite_lite.users.profile import member_profile_content

__all__ = [
    "UpgradeRequest",
    "parse_upgrade",
    "upgrade_room",
    "adopt_upgraded_room",
    "copy_user_room_data",
    "TRANSFERRED_STATE",
]

log = logging.getLogger(__name__)

TOMBSTONE = "m.room.tombstone"
POWER_LEVELS = "m.room.power_levels"
MEMBER = "m.room.member"
GUEST_ACCESS = "m.room.guest_access"
# Creation content the new room keeps (Synapse's clone_existing_room): whether it federates and
# what kind of room it is.
TRANSFERRED_CREATION = ("m.federate", "type")
# After the power levels (which the creator needs first), in this order.
TRANSFERRED_STATE = (
    "m.room.join_rules",
    "m.room.history_visibility",
    GUEST_ACCESS,
    "m.room.name",
    "m.room.topic",
    "m.room.avatar",
    "m.room.encryption",
    "m.room.server_acl",
)


@dataclass(frozen=True, slots=True)
class UpgradeRequest:
    new_version: RoomVersion
    additional_creators: tuple[str, ...] = ()


def parse_upgrade(body: dict[str, Any]) -> UpgradeRequest:
    version = body.get("new_version")
    if not isinstance(version, str):
        raise MatrixError(Errcode.MISSING_PARAM if version is None else Errcode.BAD_JSON, "new_version (a string) is required")
    try:
        rv = get_room_version(version)
    except UnsupportedRoomVersion:
        raise MatrixError(
            Errcode.UNSUPPORTED_ROOM_VERSION, "This server does not support that room version"
        ) from None
    extra = body.get("additional_creators", [])
    if not isinstance(extra, list) or not all(is_valid_user_id(u) for u in extra):
        raise MatrixError(Errcode.INVALID_PARAM, "additional_creators must be a list of user ids")
    return UpgradeRequest(rv, tuple(dict.fromkeys(extra)) if rv.privileged_creators else ())


def _new_power_levels(
    old: RoomSnapshot, requester: str, creators: Sequence[str], rv: RoomVersion
) -> dict[str, Any]:
    event = old.get(POWER_LEVELS)
    content = dict(event.content) if event is not None else {}
    users = dict(content.get("users") or {})
    if rv.privileged_creators:
        for creator in creators:  # v12 creators are implicit and may not be listed
            users.pop(creator, None)
    else:
        # The upgrader must be able to set the copied state up: at least admin, never less than
        # they had (an infinite v12 creator level becomes 100).
        level = old.power_level(requester)
        users[requester] = max(100, int(level) if math.isfinite(level) else 100)
    content["users"] = users
    return content


def _create_content(old: RoomSnapshot, req: UpgradeRequest, requester: str, last_event: str | None) -> dict[str, Any]:
    rv = req.new_version
    predecessor: dict[str, Any] = {"room_id": old.room_id}
    if last_event is not None:
        predecessor["event_id"] = last_event
    content: dict[str, Any] = {"room_version": rv.identifier, "predecessor": predecessor}
    old_create = old.get("m.room.create")
    for key in TRANSFERRED_CREATION:
        if old_create is not None and key in old_create.content:
            content[key] = old_create.content[key]
    if not rv.implicit_room_creator:
        content["creator"] = requester
    if req.additional_creators:
        content["additional_creators"] = list(req.additional_creators)
    return content


async def upgrade_room(
    storage: Storage,
    pipeline: RoomPipeline,
    *,
    server_name: str,
    requester: str,
    room_id: str,
    request: UpgradeRequest,
    account_data: AccountDataService | None = None,
) -> str:
    """Upgrade `room_id`; returns the replacement room's id."""
    old = await load_current(storage, room_id, None)
    if old.membership(requester) != "join":
        raise MatrixError(Errcode.FORBIDDEN, "You are not joined to this room")
    previous = old.get(TOMBSTONE)
    if previous is not None and previous.content.get("replacement_room"):
        raise MatrixError(Errcode.BAD_STATE, "This room has already been upgraded")
    if old.power_level(requester) < old.required_level(TOMBSTONE, ""):
        raise MatrixError(Errcode.FORBIDDEN, "You cannot upgrade this room")
    rv = request.new_version
    creators = [requester, *request.additional_creators]
    room = await storage.db.read(lambda c: rooms_table.select_room(c, room_id))
    canonical = old.get("m.room.canonical_alias")
    member = {"membership": "join", **await member_profile_content(storage, requester)}

    def following(_new_room_id: str) -> list[EventSpec]:
        specs = [
            EventSpec(requester, MEMBER, member, requester),
            EventSpec(requester, POWER_LEVELS, _new_power_levels(old, requester, creators, rv), ""),
        ]
        for event_type in TRANSFERRED_STATE:
            event = old.get(event_type)
            if event is not None:
                specs.append(EventSpec(requester, event_type, dict(event.content), ""))
            elif event_type == GUEST_ACCESS:
                # The old room's guest access, written out: absent means forbidden (the event's
                # schema). Synapse builds the new room on private_chat, whose can_join would let
                # guests in where they were not; clients (and SyTest's upgrade helper) expect
                # the event in the new room either way.
                specs.append(EventSpec(requester, GUEST_ACCESS, {"guest_access": "forbidden"}, ""))
        if canonical is not None and canonical.content:
            specs.append(EventSpec(requester, "m.room.canonical_alias", dict(canonical.content), ""))
        for (event_type, state_key) in old.state:
            ban = old.get(event_type, state_key) if event_type == MEMBER else None
            if ban is not None and ban.membership == "ban" and state_key != requester:
                specs.append(EventSpec(requester, MEMBER, dict(ban.content), state_key))
        return specs

    tombstone_id = None
    new_room_id = None
    if not rv.room_id_is_create_event_hash:
        new_room_id = f"!{secrets.token_urlsafe(18)}:{server_name}"
        planned = _create_content(old, request, requester, "$tombstone")
        with _copying():
            await pipeline.create_room(rv, requester, planned, following, room_id=new_room_id, dry_run=True)
        tombstone_id = (await _send_tombstone(pipeline, old, requester, new_room_id)).event.event_id
    create_content = _create_content(old, request, requester, tombstone_id)
    with _copying():
        new_room_id, _ = await pipeline.create_room(
            rv, requester, create_content, following,
            room_id=new_room_id, is_public=bool(room and room.is_public),
        )
    if tombstone_id is None:
        await _send_tombstone(pipeline, old, requester, new_room_id)

    await _move_directory(storage, room_id, new_room_id)
    if canonical is not None and canonical.content:
        await pipeline.send(room_id, EventSpec(requester, "m.room.canonical_alias", {}, ""))
    await _restrict_old_room(pipeline, old, requester)
    if account_data is not None:
        await copy_user_room_data(account_data, _local_members(old, server_name), room_id, new_room_id)
    return new_room_id


async def adopt_upgraded_room(
    storage: Storage, account_data: AccountDataService | None, server_name: str, new_room_id: str
) -> None:
    """Our server just joined `new_room_id` over federation: if it replaces a room we are in,
    what the upgrading server did for its own users is done for ours (Synapse's
    transfer_room_state_on_room_upgrade): local aliases and the directory listing move, and local
    members' tags and m.direct entries follow.

    Unlike Synapse, only when the old room's tombstone names the new room: a create event's
    `predecessor` is whatever the new room's creator wrote, and must not let any room take over
    another room's aliases."""
    create = (await load_current(storage, new_room_id)).get("m.room.create")
    predecessor = create.content.get("predecessor") if create is not None else None
    old_room_id = predecessor.get("room_id") if isinstance(predecessor, dict) else None
    if not isinstance(old_room_id, str):
        return
    try:
        old = await load_current(storage, old_room_id, None)
    except MatrixError:
        return  # a room we never were in
    tombstone = old.get(TOMBSTONE)
    if tombstone is None or tombstone.content.get("replacement_room") != new_room_id:
        log.info("room %s names %s as predecessor, which does not name it back", new_room_id, old_room_id)
        return
    await _move_directory(storage, old_room_id, new_room_id)
    if account_data is not None:
        await copy_user_room_data(account_data, _local_members(old, server_name), old_room_id, new_room_id)


async def _move_directory(storage: Storage, old_room_id: str, new_room_id: str) -> None:
    """Aliases of the old room name the new one; a public old room is replaced in the list."""

    async def move(conn: Any) -> None:
        await aliases_table.update_aliases_room(conn, old_room_id, new_room_id)
        room = await rooms_table.select_room(conn, old_room_id)
        if room is not None and room.is_public:
            await rooms_table.update_room_public(conn, old_room_id, False)
            await rooms_table.update_room_public(conn, new_room_id, True)

    await storage.db.write(move)


async def _send_tombstone(
    pipeline: RoomPipeline, old: RoomSnapshot, requester: str, new_room_id: str
) -> PersistedEvent:
    tombstone = {"body": "This room has been replaced", "replacement_room": new_room_id}
    return await pipeline.send(old.room_id, EventSpec(requester, TOMBSTONE, tombstone, ""))


@contextmanager
def _copying() -> Iterator[None]:
    """The new room's events are built from the old room's state: an auth failure there means
    that state cannot be copied (not that the requester may not upgrade)."""
    try:
        yield
    except MatrixError as e:
        if e.errcode == Errcode.FORBIDDEN:
            raise MatrixError(Errcode.FORBIDDEN, f"Cannot copy the room's state: {e.error}") from None
        raise


def _local_members(old: RoomSnapshot, server_name: str) -> list[str]:
    return [
        key for (event_type, key) in old.state
        if event_type == MEMBER and server_name_of(key) == server_name and old.membership(key) == "join"
    ]


async def copy_user_room_data(
    account_data: AccountDataService, users: Sequence[str], old_room_id: str, new_room_id: str
) -> None:
    """Each user's tags on the old room, and the old room's m.direct entries, for the new room
    too (Synapse's copy_room_tags_and_direct_to_room)."""
    for user_id in users:
        tags = await account_data.read(user_id, old_room_id, "m.tag")
        if tags:
            await account_data.update(user_id, new_room_id, "m.tag", lambda old, t=tags: None if old else dict(t))

        def add_direct(old: dict[str, Any] | None) -> dict[str, Any] | None:
            if not old:
                return None
            new = {k: list(v) if isinstance(v, list) else v for k, v in old.items()}
            changed = False
            for rooms in new.values():
                if isinstance(rooms, list) and old_room_id in rooms and new_room_id not in rooms:
                    rooms.append(new_room_id)
                    changed = True
            return new if changed else None

        await account_data.update(user_id, "", "m.direct", add_direct)


async def _restrict_old_room(pipeline: RoomPipeline, old: RoomSnapshot, requester: str) -> None:
    """Stop ordinary members sending and inviting in the old room (step 6, "if possible")."""
    event = old.get(POWER_LEVELS)
    content = dict(event.content) if event is not None else {}
    floor = max(50, _int(content.get("users_default")) + 1)
    content["events_default"] = max(floor, _int(content.get("events_default")))
    content["invite"] = max(floor, _int(content.get("invite")))
    try:
        await pipeline.send(old.room_id, EventSpec(requester, POWER_LEVELS, content, ""))
    except MatrixError as e:
        log.info("old room %s power levels not restricted after upgrade: %s", old.room_id, e)



def _int(value: Any) -> int:
    return value if type(value) is int else 0
