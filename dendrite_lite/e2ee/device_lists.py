"""Device list tracking (end_to_end_encryption.md §Tracking the device list for a user): who
must re-query whose keys, for /sync `device_lists` and GET /keys/changes.

A change (a device added, renamed or deleted, keys uploaded or changed, cross-signing keys
replaced; a user-signing key or a signature it made is a change only its owner hears of) is
a row of the device list stream written in the same transaction as the change itself
(storage/device_lists.py); `changed(user_id)` runs after that commit and wakes the /sync of
everyone who shares a room with the user, and the user's own other devices.

`changed` and `left` between two sync tokens:
- changed: users sharing a room with the requester now whose device list changed in between,
  and users who became room-mates in between (joined a room of ours, or were in a room we
  joined); the spec allows the latter even when another room was already shared. Users
  invited (or knocking) in between to a room we are in count too, as in Synapse: clients may
  encrypt to invited members, so they fetch the invitee's keys;
- left: users who were in a room one of us left in between and share no room with us now.
NOTSPEC: "encrypted rooms" in the spec's definitions are read as "rooms": a superset for
`changed` (harmless: the client re-queries), and `left` only names users sharing no room.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiosqlite

from dendrite_lite.storage import Storage
from dendrite_lite.storage import device_lists as table
from dendrite_lite.sync.notifier import Notifier
from dendrite_lite.sync.tokens import parse_sync_token

__all__ = ["DeviceListChanges", "DeviceListService"]

log = logging.getLogger(__name__)

# Called with a local user id after a change of their devices committed: the federation
# sender of m.device_list_update EDUs (federation/device_list_edus.py).
LocalChangeHook = Callable[[str], Awaitable[None]]

_LEAVING = ("leave", "ban")


@dataclass(frozen=True, slots=True)
class DeviceListChanges:
    changed: list[str]
    left: list[str]

    def to_json(self) -> dict[str, list[str]]:
        return {"changed": self.changed, "left": self.left}


class DeviceListService:
    def __init__(
        self,
        storage: Storage,
        notifier: Notifier,
        *,
        on_local_change: LocalChangeHook | None = None,
    ) -> None:
        self._storage = storage
        self._notifier = notifier
        self._on_local_change = on_local_change
        # Hears every change, local or remote: (user, the users sharing a room with them and
        # the user). Application services with MSC3202 device lists: it wakes their queues,
        # which read the stream itself (a change is never lost if this is not called).
        self.on_change: Callable[[str, set[str]], Awaitable[None]] | None = None

    async def changed(self, user_id: str, *, local: bool = True) -> None:
        """After a committed change of the user's device list: wake who must hear of it.
        `local=False`: another server's user (e2ee/remote_device_lists.py), whose own server
        tells the other servers."""
        sharing = await self._storage.db.read(
            lambda conn: table.select_users_sharing_rooms_with(conn, user_id)
        )
        self._notifier.notify(sharing | {user_id})
        if self.on_change is not None:
            try:
                await self.on_change(user_id, sharing | {user_id})
            except Exception:  # the change is committed; the ASes' queues find it when next woken
                log.exception("appservices not woken for the device list change of %s", user_id)
        if local and self._on_local_change is not None:
            try:
                await self._on_local_change(user_id)
            except Exception:  # the change is committed; other servers catch up later
                log.exception("device list update of %s not handed to federation", user_id)

    async def changes(
        self, user_id: str, *, since_room: int, until_room: int, since: int, until: int
    ) -> DeviceListChanges:
        """Between room positions (since_room, until_room] and device list positions
        (since, until]; see the module docstring."""
        return await self._storage.db.read(
            lambda conn: _changes(conn, user_id, since_room, until_room, since, until)
        )

    async def key_changes(self, user_id: str, from_token: str, to_token: str) -> DeviceListChanges:
        """GET /_matrix/client/v3/keys/changes between two sync tokens."""
        since, until = parse_sync_token(from_token), parse_sync_token(to_token)
        return await self.changes(
            user_id,
            since_room=since.room,
            until_room=until.room,
            since=since.device_lists,
            until=until.device_lists,
        )


async def _changes(
    conn: aiosqlite.Connection,
    user_id: str,
    since_room: int,
    until_room: int,
    since: int,
    until: int,
) -> DeviceListChanges:
    changed: set[str] = set()
    private: set[str] = set()  # user-signing key changes and signatures: the signer's only
    if since < until:
        changed = await table.select_changed_users(conn, since, until)
        private = await table.select_changed_users(conn, since, until, seen_by=user_id)
    met: set[str] = set()
    parted: set[str] = set()
    invited: set[str] = set()
    if since_room < until_room:
        for change in await table.select_membership_changes(conn, user_id, since_room, until_room):
            if change.user_id == user_id:
                # We joined or left: everyone in that room is met or parted.
                members = set(await table.select_room_members(conn, change.room_id))
                if change.membership == "join":
                    met |= members
                elif change.membership in _LEAVING:
                    parted |= members
            elif change.membership == "join":
                met.add(change.user_id)
            elif change.membership in ("invite", "knock") and user_id in set(
                await table.select_room_members(conn, change.room_id)
            ):
                invited.add(change.user_id)
            elif change.membership in _LEAVING:
                parted.add(change.user_id)
    met.discard(user_id)
    if not (changed or met or parted or invited or private):
        return DeviceListChanges([], [])  # the usual case: no need to know who shares a room
    sharing = await table.select_users_sharing_rooms_with(conn, user_id)
    changed = (
        (changed & (sharing | {user_id})) | (met & sharing) | (invited - {user_id}) | private
    )
    left = parted - sharing - {user_id}
    return DeviceListChanges(sorted(changed), sorted(left))
