"""Room membership for local users: join, invite, leave, kick, ban, unban, forget and the
membership reads (client-server-api §Room membership; joining/inviting/leaving/kicking/banning.yaml).

Every change is an m.room.member event through the pipeline, so the auth rules decide (403
M_FORBIDDEN with the failing rule). The checks here are the ones the auth rules cannot make,
e.g. that an unban target is actually banned (a "leave" event would otherwise kick them).
Join and invite events carry the user's displayname/avatar_url (§Profiles).

Rooms this server is not in (no local user joined) and users of other servers go through
federation (`federation`, federation/remote_membership.py): joining or knocking via make_*/send_*,
inviting via /invite, rejecting a remote invite via make_leave/send_leave.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiosqlite

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.events.event import Event
from dendrite_lite.events.ids import is_valid_user_id, server_name_of
from dendrite_lite.events.room_versions import DEFAULT_ROOM_VERSION, RoomVersion
from dendrite_lite.federation.remote_membership import FederatedMembership
from dendrite_lite.federation.room_blocks import refuse_blocked_room
from dendrite_lite.request_body import required_field
from dendrite_lite.rooms.access import MEMBER, load_current, load_readable
from dendrite_lite.rooms.aliases import alias_from_localpart, alias_is_free, parse_alias, resolve_alias
from dendrite_lite.rooms.creation import CreateRoomRequest, create_room
from dendrite_lite.rooms.pipeline import EventSpec, PersistedEvent, RoomPipeline
from dendrite_lite.rooms.upgrade import adopt_upgraded_room
from dendrite_lite.storage import Storage
from dendrite_lite.storage import accounts as accounts_table
from dendrite_lite.storage import aliases as aliases_table
from dendrite_lite.storage import events as events_table
from dendrite_lite.storage import history as history_table
from dendrite_lite.storage import rooms as rooms_table
from dendrite_lite.storage import state as state_table
from dendrite_lite.storage.events import StoredEvent
from dendrite_lite.users.account_data import AccountDataService
from dendrite_lite.users.profile import member_profile_content

if TYPE_CHECKING:
    from dendrite_lite.appservice.requests import AppserviceRequests
    from dendrite_lite.rooms.third_party_invites import ThirdPartyInvites
    from dendrite_lite.users.identity_server import ThreepidInvite

log = logging.getLogger(__name__)

__all__ = [
    "MembershipService",
    "MEMBERSHIPS",
    "parse_target_user",
]

MEMBERSHIPS = ("join", "invite", "knock", "leave", "ban")
# Keys of a /join body with a meaning of their own (joining.yaml), not copied into the event.
_JOIN_BODY_KEYS = ("membership", "reason", "third_party_signed")


def parse_target_user(body: Mapping[str, Any]) -> str:
    """The `user_id` of an invite/kick/ban/unban body: 400 M_MISSING_PARAM / M_BAD_JSON /
    M_INVALID_PARAM."""
    # The type first: a list or a number is a malformed body (and echoing its repr would not
    # tell the client which field is wrong).
    user_id: str = required_field(body, "user_id", "string")
    if not is_valid_user_id(user_id):
        raise MatrixError(Errcode.INVALID_PARAM, f"user_id {user_id!r} is not a valid user id")
    return user_id


GUEST_ACCESS = "m.room.guest_access"


def _guests_can_join(guest_access: Event | None) -> bool:
    return guest_access is not None and guest_access.content.get("guest_access") == "can_join"


def _reason(reason: Any) -> dict[str, Any]:
    if reason is None:
        return {}
    if not isinstance(reason, str):
        raise MatrixError(Errcode.BAD_JSON, "reason must be a string")
    return {"reason": reason}


@dataclass(frozen=True, slots=True)
class MembershipService:
    storage: Storage
    pipeline: RoomPipeline
    server_name: str
    federation: FederatedMembership | None = None
    # New rooms' version when /createRoom names none (server.default_room_version).
    default_room_version: RoomVersion = DEFAULT_ROOM_VERSION
    # Where local users' tags and m.direct follow an upgraded room they join over federation.
    account_data: AccountDataService | None = None
    # Unknown local users and aliases in an application service's namespace are asked of it
    # (appservice/requests.py: query_user, query_alias), which may create them.
    appservice_requests: AppserviceRequests | None = None
    # Invites by email address through an identity server (rooms/third_party_invites.py).
    third_party: ThirdPartyInvites | None = None

    async def _send(self, room_id: str, sender: str, target: str, content: dict[str, Any]) -> PersistedEvent:
        return await self.pipeline.send(room_id, EventSpec(sender, MEMBER, content, target))

    async def _target_membership(self, room_id: str, target: str) -> str | None:
        room = await load_current(self.storage, room_id, [(MEMBER, target)])
        return room.membership(target)

    # --- changes -------------------------------------------------------------------------------
    async def create_room(self, creator: str, request: CreateRoomRequest) -> tuple[str, str | None]:
        """POST /createRoom: (room_id, alias). room_alias_name becomes #name:server, reserved
        here: taken -> 400 M_ROOM_IN_USE, malformed -> 400 M_INVALID_PARAM."""
        alias = None
        if request.room_alias_name is not None:
            alias = alias_from_localpart(request.room_alias_name, self.server_name)
            if not await alias_is_free(self.storage, alias):
                raise MatrixError(Errcode.ROOM_IN_USE, f"Room alias {alias} already taken")
        for invitee in request.invite:
            if not is_valid_user_id(invitee):
                raise MatrixError(Errcode.INVALID_PARAM, f"{invitee!r} is not a valid user id")
        profiles = {
            user: await member_profile_content(self.storage, user)
            for user in (creator, *request.invite)
            if server_name_of(user) == self.server_name
        }
        room_id, _ = await create_room(
            self.pipeline,
            server_name=self.server_name,
            creator=creator,
            request=request,
            alias=alias,
            profiles=profiles,
            default_version=self.default_room_version,
        )
        await self._invite_remote_invitees(creator, room_id, request)
        await self._invite_threepids(creator, room_id, request)
        if alias is not None:
            now = int(time.time() * 1000)
            inserted = await self.storage.db.write(
                lambda c: aliases_table.insert_alias(c, alias, room_id, creator, now)
            )
            if not inserted:
                # Lost a race for the alias between the check and now: the room exists, its
                # canonical alias points at a name another room took. Say so rather than hide it.
                raise MatrixError(Errcode.ROOM_IN_USE, f"Room alias {alias} was taken meanwhile")
        return room_id, alias

    async def _invite_remote_invitees(
        self, creator: str, room_id: str, request: CreateRoomRequest
    ) -> None:
        """/createRoom's `invite` of users on other servers: each through its server, as
        /invite does. A server that cannot be reached does not undo the room: the client got
        a room either way, and failing now would make it create a second one on retry; the
        invite can be sent again (Element shows who is not invited)."""
        content: dict[str, Any] = {"membership": "invite"}
        if request.is_direct:
            content["is_direct"] = True
        for invitee in request.invite:
            if server_name_of(invitee) == self.server_name:
                continue
            if self.federation is None:
                log.warning("createRoom %s: not inviting %s: federation is disabled", room_id, invitee)
                continue
            try:
                await self.federation.invite(creator, room_id, invitee, dict(content))
            except MatrixError as e:
                log.warning("createRoom %s: could not invite %s: %s %s", room_id, invitee, e.errcode, e.error)

    async def _invite_threepids(self, creator: str, room_id: str, request: CreateRoomRequest) -> None:
        """/createRoom's invite_3pid, each as POST /invite with an identity server would. As
        for remote invitees, a failure is logged and does not undo the room."""
        for invite in request.invite_3pid:
            try:
                await self.invite_3pid(creator, room_id, invite)
            except MatrixError as e:
                log.warning(
                    "createRoom %s: could not invite a %s: %s %s",
                    room_id, invite.medium, e.errcode, e.error,
                )

    async def join(
        self,
        user_id: str,
        room_id_or_alias: str,
        *,
        reason: Any = None,
        servers: Sequence[str] = (),
        guest: bool = False,
        body: Mapping[str, Any] | None = None,
    ) -> str:
        """POST /join/{roomIdOrAlias} and /rooms/{roomId}/join; returns the room id. `servers`
        (via / server_name) are where to ask when the room is on other servers. A `guest` joins
        only a room whose m.room.guest_access is can_join (guest_access.md §Server behaviour).
        Other keys of the request `body` go into the member event, as Synapse puts them (SyTest
        "POST /join/:room_id can join a room with custom content"); the membership, reason and
        profile are ours."""
        room_id, servers = await self._room_and_servers(room_id_or_alias, servers)
        await refuse_blocked_room(self.storage, room_id)
        if body and body.get("third_party_signed") is not None:
            # The invite the identity server's signature stands for, then the join.
            if self.third_party is None:
                raise MatrixError(Errcode.FORBIDDEN, "Third-party invites are not supported here")
            await self.third_party.accept_signed(user_id, room_id, body["third_party_signed"], servers)
        extra = {k: v for k, v in (body or {}).items() if k not in _JOIN_BODY_KEYS}
        content = {**extra, "membership": "join", **_reason(reason)}
        content.update(await member_profile_content(self.storage, user_id))
        if await self._remote(room_id):
            assert self.federation is not None
            if guest and not await self._invited_with_guest_access(room_id, user_id):
                raise MatrixError(Errcode.FORBIDDEN, "Guest access is not allowed in this room")
            try:
                recheck = await self.federation.check_complexity(user_id, room_id, servers)
                await self.federation.join(user_id, room_id, servers, content)
                refusal = await self.federation.complexity_refusal(room_id) if recheck else None
                if refusal is not None:
                    # Nobody told us its size before the join (as Synapse, leave at once).
                    await self._send(room_id, user_id, user_id, {"membership": "leave"})
                    raise refusal
                await adopt_upgraded_room(self.storage, self.account_data, self.server_name, room_id)
                return room_id
            except MatrixError as e:
                # No other server to ask: a room only we ever held can still be joined here.
                if e.errcode != Errcode.NOT_FOUND or not await self._known(room_id):
                    raise
        try:
            room = await load_current(self.storage, room_id, [(MEMBER, user_id), (GUEST_ACCESS, "")])
        except MatrixError as e:
            if e.errcode == Errcode.NOT_FOUND:
                raise MatrixError(
                    Errcode.NOT_FOUND, f"Room {room_id} is not known to this server"
                ) from None
            raise
        current = room.get(MEMBER, user_id)
        if guest and not _guests_can_join(room.get(GUEST_ACCESS, "")):
            raise MatrixError(Errcode.FORBIDDEN, "Guest access is not allowed in this room")
        # Joining again with nothing new would only add noise to everyone's timeline.
        if current is not None and current.membership == "join" and dict(current.content) == content:
            return room_id
        await self._send(room_id, user_id, user_id, content)
        return room_id

    async def knock(
        self, user_id: str, room_id_or_alias: str, *, reason: Any = None, servers: Sequence[str] = ()
    ) -> str:
        """POST /knock/{roomIdOrAlias}; returns the room id."""
        room_id, servers = await self._room_and_servers(room_id_or_alias, servers)
        await refuse_blocked_room(self.storage, room_id)
        content = {"membership": "knock", **_reason(reason)}
        content.update(await member_profile_content(self.storage, user_id))
        if await self._remote(room_id):
            assert self.federation is not None
            await self.federation.knock(user_id, room_id, servers, content)
        else:
            await self._send(room_id, user_id, user_id, content)
        return room_id

    async def _room_and_servers(
        self, room_id_or_alias: str, servers: Sequence[str]
    ) -> tuple[str, list[str]]:
        if room_id_or_alias.startswith("#"):
            if self.federation is not None and parse_alias(room_id_or_alias)[1] != self.server_name:
                room_id, found = await self.federation.resolve_alias(room_id_or_alias)
            else:
                ask = self.appservice_requests
                room_id, found = await resolve_alias(
                    self.storage, server_name=self.server_name, alias=room_id_or_alias,
                    ask_appservice=ask.query_alias if ask is not None else None,
                )
            return room_id, [*servers, *found]
        if not room_id_or_alias.startswith("!"):
            raise MatrixError(Errcode.INVALID_PARAM, f"{room_id_or_alias!r} is not a room id or alias")
        return room_id_or_alias, list(servers)

    async def _remote(self, room_id: str) -> bool:
        """Whether changes to `room_id` must go through another server: we are not in it."""
        return self.federation is not None and not await self.federation.is_resident(room_id)

    async def _invited_with_guest_access(self, room_id: str, user_id: str) -> bool:
        """A room we are not in: its guest access is known only from the state the inviting
        server sent with the user's invite. Unknown counts as no (guest_access.md: guests join
        only where m.room.guest_access is can_join)."""

        async def read(conn: aiosqlite.Connection) -> StoredEvent | None:
            current = await history_table.select_current_memberships(conn, user_id, [room_id])
            held = current.get(room_id)
            return await events_table.select_event(conn, held[1]) if held else None

        invite = await self.storage.db.read(read)
        if invite is None or invite.event.membership != "invite":
            return False
        stripped = invite.event.unsigned.get("invite_room_state")
        return any(
            isinstance(e, Mapping) and e.get("type") == GUEST_ACCESS and e.get("state_key") == ""
            and isinstance(e.get("content"), Mapping)
            and e["content"].get("guest_access") == "can_join"
            for e in (stripped if isinstance(stripped, list) else [])
        )

    async def _known(self, room_id: str) -> bool:
        return await self.storage.db.read(lambda c: rooms_table.select_room(c, room_id)) is not None

    async def invite(self, sender: str, room_id: str, target: str, *, reason: Any = None) -> None:
        await refuse_blocked_room(self.storage, room_id)
        if server_name_of(target) != self.server_name:
            if self.federation is None:
                raise MatrixError(Errcode.FORBIDDEN, "Federation is disabled on this server")
            await self.federation.invite(sender, room_id, target, {"membership": "invite", **_reason(reason)})
            return
        account = await self.storage.db.read(lambda c: accounts_table.select_account(c, target))
        if account is None and self.appservice_requests is not None:
            if await self.appservice_requests.query_user(target):
                account = await self.storage.db.read(
                    lambda c: accounts_table.select_account(c, target)
                )
        if account is None or account.deactivated:
            raise MatrixError(Errcode.NOT_FOUND, f"Unknown user {target}")
        content = {"membership": "invite", **_reason(reason)}
        content.update(await member_profile_content(self.storage, target))
        await self._send(room_id, sender, target, content)

    async def invite_3pid(self, sender: str, room_id: str, invite: ThreepidInvite) -> None:
        """POST /rooms/{roomId}/invite with an identity server: the user bound to the address
        is invited as usual; nobody bound, the invite waits at the identity server."""
        await refuse_blocked_room(self.storage, room_id)
        if self.third_party is None:
            raise MatrixError(Errcode.FORBIDDEN, "Third-party invites are not supported here")
        bound = await self.third_party.invite(sender, room_id, invite)
        if bound is not None:
            await self.invite(sender, room_id, bound)

    async def leave(self, user_id: str, room_id: str, *, reason: Any = None) -> None:
        content = {"membership": "leave", **_reason(reason)}
        if await self._remote(room_id) and await self._target_membership(room_id, user_id) in (
            "invite", "knock",
        ):
            # Rejecting an invite (or taking back a knock) to a room we are not in.
            assert self.federation is not None
            await self.federation.leave(user_id, room_id, content)
            return
        await self._send(room_id, user_id, user_id, content)

    async def kick(self, sender: str, room_id: str, target: str, *, reason: Any = None) -> None:
        if await self._target_membership(room_id, target) not in ("join", "invite", "knock"):
            raise MatrixError(Errcode.FORBIDDEN, f"{target} is not in the room")
        await self._send(room_id, sender, target, {"membership": "leave", **_reason(reason)})

    async def ban(self, sender: str, room_id: str, target: str, *, reason: Any = None) -> None:
        await self._send(room_id, sender, target, {"membership": "ban", **_reason(reason)})

    async def unban(self, sender: str, room_id: str, target: str, *, reason: Any = None) -> None:
        if await self._target_membership(room_id, target) != "ban":
            raise MatrixError(Errcode.FORBIDDEN, f"{target} is not banned")
        await self._send(room_id, sender, target, {"membership": "leave", **_reason(reason)})

    async def forget(self, user_id: str, room_id: str) -> None:
        """POST /rooms/{roomId}/forget: only once left (400 M_UNKNOWN while in the room)."""
        room = await load_current(self.storage, room_id, [(MEMBER, user_id)])
        member_id = room.state.get((MEMBER, user_id))
        membership = room.membership(user_id)
        if membership in ("join", "invite", "knock"):
            raise MatrixError(Errcode.UNKNOWN, f"User {user_id} is in room {room_id}", status=400)
        if member_id is None:
            return  # never a member: nothing to forget
        await self.storage.db.write(
            lambda c: aliases_table.insert_forgotten(c, user_id, room_id, member_id)
        )

    # --- reads ---------------------------------------------------------------------------------
    async def joined_rooms(self, user_id: str) -> list[str]:
        return await self.storage.db.read(
            lambda c: state_table.select_room_ids_for_user(c, user_id, "join")
        )

    async def members(
        self,
        user_id: str,
        room_id: str,
        *,
        at: int | None = None,
        membership: str | None = None,
        not_membership: str | None = None,
    ) -> list[StoredEvent]:
        """GET /rooms/{roomId}/members: member events of the state the user may read, or of the
        state at stream position `at` if that is earlier. `membership`/`not_membership` combine
        as "is X or is not Y" (rooms.yaml)."""
        room = await load_readable(self.storage, user_id, room_id, None)
        state = room.state
        events = room.events
        # A user who left may look at most as far as their leave event.
        limit = None if room.is_current else room.events[state[(MEMBER, user_id)]].stream_ordering
        if at is not None and (limit is None or at < limit):
            state, events = await self.storage.db.read(lambda c: _member_state_at(c, room_id, at))
        out = []
        for (event_type, _), event_id in sorted(state.items()):
            stored = events.get(event_id)
            if event_type != MEMBER or stored is None:
                continue
            value = stored.event.membership
            if membership is None and not_membership is None:
                keep = True
            else:
                keep = (membership is not None and value == membership) or (
                    not_membership is not None and value != not_membership
                )
            if keep:
                out.append(stored)
        return out

    async def joined_members(self, user_id: str, room_id: str) -> dict[str, dict[str, str]]:
        """GET /rooms/{roomId}/joined_members: the requester must be joined (403 otherwise)."""
        room = await load_current(self.storage, room_id, [(MEMBER, user_id)])
        if room.membership(user_id) != "join":
            raise MatrixError(Errcode.FORBIDDEN, f"You aren't a member of {room_id}")
        profiles = await self.storage.db.read(lambda c: state_table.select_joined_profiles(c, room_id))
        joined: dict[str, dict[str, str]] = {}
        for member, name, avatar in profiles:
            info: dict[str, str] = {}
            if name is not None:
                info["display_name"] = name
            if avatar is not None:
                info["avatar_url"] = avatar
            joined[member] = info
        return joined



async def _member_state_at(
    conn: aiosqlite.Connection, room_id: str, position: int
) -> tuple[dict[tuple[str, str], str], dict[str, StoredEvent]]:
    """The room's state after its last event at or before stream `position`, members loaded."""
    latest = await events_table.select_room_events(
        conn, room_id, before=position + 1, limit=1, backwards=True
    )
    group = latest[0].state_group if latest else None
    ids = await state_table.select_state_group(conn, group) if group is not None else {}
    members = await events_table.select_events(conn, [e for (t, _), e in ids.items() if t == MEMBER])
    return ids, members
