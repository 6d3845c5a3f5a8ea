"""Profiles: displayname and avatar_url (client-server-api §Profiles, profile.yaml).

A change is stored on the account and then propagated as a new m.room.member (join) event into
every room the user is joined to, keeping the rest of their member content (§Events on Change of
Profile Information). Only these two fields exist here; other profile keys (m.tz, custom) are
refused, and /capabilities says so through m.profile_fields.

Other servers' users are looked up through `RemoteProfiles` (users/remote_profiles.py), which
keeps to the same two fields.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiosqlite

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.events.ids import is_valid_user_id
from dendrite_lite.rooms.pipeline import EventSpec, RoomPipeline
from dendrite_lite.storage import Storage
from dendrite_lite.storage import accounts as accounts_table
from dendrite_lite.storage import events as events_table
from dendrite_lite.storage import state as state_table

if TYPE_CHECKING:
    from dendrite_lite.users.remote_profiles import RemoteProfiles

__all__ = [
    "PROFILE_FIELDS",
    "Profile",
    "get_profile",
    "lookup_profile",
    "profile_field",
    "set_profile_field",
    "member_profile_content",
]

log = logging.getLogger(__name__)

PROFILE_FIELDS = ("displayname", "avatar_url")
# profile.yaml: "the total profile MUST be under 64 KiB"; one field far smaller is plenty.
MAX_FIELD_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class Profile:
    displayname: str | None
    avatar_url: str | None

    def to_json(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.displayname is not None:
            out["displayname"] = self.displayname
        if self.avatar_url is not None:
            out["avatar_url"] = self.avatar_url
        return out


def _check_user_id(user_id: str) -> None:
    if not is_valid_user_id(user_id):
        raise MatrixError(Errcode.INVALID_PARAM, f"{user_id!r} is not a valid user id")


async def get_profile(storage: Storage, user_id: str) -> Profile:
    """A local user's profile; 400 M_INVALID_PARAM for a malformed id, 404 M_NOT_FOUND if unknown
    (or not one of our accounts)."""
    _check_user_id(user_id)
    account = await storage.db.read(lambda c: accounts_table.select_account(c, user_id))
    if account is None or account.deactivated:
        raise MatrixError(Errcode.NOT_FOUND, "Profile not found")
    return Profile(account.displayname, account.avatar_url)


async def lookup_profile(
    storage: Storage,
    user_id: str,
    *,
    server_name: str,
    requester: str | None,
    remote: RemoteProfiles | None,
) -> Profile:
    """GET /profile/{userId}: our users from their accounts, other servers' users through
    `remote` (None when federation is disabled: they are then unknown, 404). `requester` is
    None for a request without an access token."""
    _check_user_id(user_id)
    if remote is None or user_id.partition(":")[2] == server_name:
        return await get_profile(storage, user_id)
    return await remote.get_profile(user_id, requester)


def profile_field(profile: Profile, key: str) -> dict[str, str]:
    """GET /profile/{userId}/{keyName}: one field, 404 M_NOT_FOUND when it is not set."""
    fields = profile.to_json()
    if key not in fields:
        raise MatrixError(Errcode.NOT_FOUND, f"Profile field {key} not set")
    return {key: fields[key]}


def _validate_value(key: str, value: Any, *, any_avatar_url: bool = False) -> str | None:
    if key not in PROFILE_FIELDS:
        raise MatrixError(Errcode.FORBIDDEN, f"Profile field {key!r} cannot be changed here")
    if value is None:
        return None
    if not isinstance(value, str):
        raise MatrixError(Errcode.BAD_JSON, f"{key} must be a string")
    if len(value.encode("utf-8")) > MAX_FIELD_BYTES:
        raise MatrixError(Errcode.TOO_LARGE, f"{key} is too long")
    if key == "avatar_url" and value and not value.startswith("mxc://") and not any_avatar_url:
        raise MatrixError(Errcode.BAD_JSON, "avatar_url must be an mxc:// URI")
    return value


async def set_profile_field(
    storage: Storage,
    pipeline: RoomPipeline,
    *,
    requester: str,
    user_id: str,
    key: str,
    value: Any,
    any_avatar_url: bool = False,
) -> None:
    """PUT (value) or DELETE (value None) /profile/{userId}/{keyName}, then propagate.

    Only your own profile (403 otherwise); unknown user -> 404. `any_avatar_url`: an
    application service's avatar_url need not be an mxc:// URI.
    """
    _check_user_id(user_id)
    if requester != user_id:
        raise MatrixError(Errcode.FORBIDDEN, "You may only change your own profile")
    new = _validate_value(key, value, any_avatar_url=any_avatar_url)
    current = await get_profile(storage, user_id)
    update = accounts_table.update_displayname if key == "displayname" else accounts_table.update_avatar_url
    await storage.db.write(lambda c: update(c, user_id, new))
    if getattr(current, key) != new:
        await _propagate(storage, pipeline, user_id, key, new)


async def _joined_member_contents(
    conn: aiosqlite.Connection, user_id: str
) -> list[tuple[str, dict[str, Any]]]:
    rooms = await state_table.select_room_ids_for_user(conn, user_id, "join")
    out = []
    for room_id in rooms:
        event_id = await state_table.select_current_state_event_id(
            conn, room_id, "m.room.member", user_id
        )
        stored = await events_table.select_event(conn, event_id) if event_id else None
        if stored is not None:
            out.append((room_id, dict(stored.event.content)))
    return out


async def _propagate(
    storage: Storage, pipeline: RoomPipeline, user_id: str, key: str, value: str | None
) -> None:
    for room_id, content in await storage.db.read(lambda c: _joined_member_contents(c, user_id)):
        if value is None:
            content.pop(key, None)
        else:
            content[key] = value
        content["membership"] = "join"
        try:
            await pipeline.send(room_id, EventSpec(user_id, "m.room.member", content, user_id))
        except MatrixError as e:
            # One room refusing (e.g. a moderation rule) must not undo the change elsewhere.
            log.warning("profile change of %s not propagated to %s: %s", user_id, room_id, e)


async def member_profile_content(storage: Storage, user_id: str) -> dict[str, str]:
    """displayname/avatar_url for a member event of a local user ({} if unknown)."""
    account = await storage.db.read(lambda c: accounts_table.select_account(c, user_id))
    if account is None:
        return {}
    return Profile(account.displayname, account.avatar_url).to_json()
