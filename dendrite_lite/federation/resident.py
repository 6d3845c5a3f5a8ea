"""The resident server's side of joins, leaves and knocks by users of other servers
(server-server-api.md §Joining Rooms, §Leaving Rooms (Rejecting Invites), §Knocking upon a room;
joins-v2.yaml, leaving-v2.yaml, knocks.yaml).

make_*: a template of the membership event on top of our current state, refused early when the
auth rules would refuse it (403) or the joining server cannot speak the room's version (400
M_INCOMPATIBLE_ROOM_VERSION). For a restricted room the template names one of our users able to
invite as `join_authorised_via_users_server`.
send_*: the signed event is checked (ids, type, membership, sender of the origin), co-signed by
us when one of our users authorises a restricted join, and goes through the federation ingest
pipeline like any PDU; a rejection is a 403.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

from dendrite_lite.crypto.keys import ServerKey
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.events.event import Event, StateKey
from dendrite_lite.events.ids import server_name_of
from dendrite_lite.events.pdu import pdu_for_federation
from dendrite_lite.events.power_levels import named_power_level, user_power_level
from dendrite_lite.events.room_versions import RoomVersion
from dendrite_lite.events.signing import add_event_signature
from dendrite_lite.federation.acl import check_server_acl
from dendrite_lite.federation.checks import PduDropped
from dendrite_lite.federation.ingest import FederationIngest
from dendrite_lite.federation.room_blocks import refuse_blocked_room
from dendrite_lite.federation.room_state_hints import state_hint_pdus
from dendrite_lite.federation.sender import FederationSender
from dendrite_lite.federation.membership_events import (
    MEMBER,
    build_member_event,
    check_room_version_offered,
    is_resident,
    parse_member_event,
    template_of,
)
from dendrite_lite.federation.state_at import StateLoader, StateUnavailable
from dendrite_lite.rooms.access import RoomSnapshot, load_current
from dendrite_lite.storage import Storage
from dendrite_lite.storage import events as events_table
from dendrite_lite.storage import remote_events as remote_table
from dendrite_lite.storage import state as state_table
from dendrite_lite.sync.room_sections import STRIPPED_STATE_TYPES

__all__ = ["ResidentMembership", "SendJoinResult"]

_RESTRICTED_RULES = ("restricted", "knock_restricted")
# omit_members: member events still sent so the joiner can name the room (the m.heroes of /sync).
_HEROES = 5


@dataclass(frozen=True, slots=True)
class SendJoinResult:
    state: list[dict[str, Any]]
    auth_chain: list[dict[str, Any]]
    event: dict[str, Any]
    members_omitted: bool
    servers_in_room: list[str]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "state": self.state,
            "auth_chain": self.auth_chain,
            "event": self.event,
            "members_omitted": self.members_omitted,
        }
        if self.members_omitted:
            out["servers_in_room"] = self.servers_in_room
        return out


class ResidentMembership:
    def __init__(
        self,
        storage: Storage,
        ingest: FederationIngest,
        *,
        server_name: str,
        key: ServerKey,
        sender: FederationSender | None = None,
    ) -> None:
        """`sender` forwards the membership events we accept to the room's other servers."""
        self._storage = storage
        self._ingest = ingest
        self._sender = sender
        self._server_name = server_name
        self._key = key
        self._loader = StateLoader(storage)

    # --- make_* ----------------------------------------------------------------------------------
    async def make_membership(
        self, origin: str, room_id: str, user_id: str, membership: str, offered: Sequence[str] | None
    ) -> tuple[RoomVersion, dict[str, Any]]:
        """GET make_join/make_leave/make_knock: (room version, event template). `offered` is the
        `ver` list (None for make_leave, which has none)."""
        if server_name_of(user_id) != origin:
            raise MatrixError(Errcode.FORBIDDEN, f"{user_id} is not a user of {origin}")
        await check_server_acl(self._storage, room_id, origin)
        if membership in ("join", "knock"):
            await refuse_blocked_room(self._storage, room_id)
        room = await self._resident_room(room_id)
        if offered is not None:
            check_room_version_offered(room.version, offered)
        content: dict[str, Any] = {"membership": membership}
        if membership == "join":
            via = await self._restricted_authoriser(room, user_id)
            if via is not None:
                content["join_authorised_via_users_server"] = via
        # Built (and signed) by us only to run the auth rules; the joining server signs its own.
        event = await build_member_event(
            self._storage, server_name=self._server_name, key=self._key, room_id=room_id,
            sender=user_id, target=user_id, content=content,
        )
        return room.version, template_of(event)

    async def _resident_room(self, room_id: str) -> RoomSnapshot:
        if not await is_resident(self._storage, room_id, self._server_name):
            raise MatrixError(Errcode.NOT_FOUND, f"{self._server_name} is not in room {room_id}")
        return await load_current(self._storage, room_id, None)

    async def _restricted_authoriser(self, room: RoomSnapshot, user_id: str) -> str | None:
        """For a restricted room a joiner neither invited nor joined must be in an allowed
        room; one of our joined users who may invite then authorises the join."""
        rules = room.get("m.room.join_rules")
        rule = rules.content.get("join_rule") if rules is not None else None
        flag = {"restricted": "restricted_join_rule", "knock_restricted": "knock_restricted_join_rule"}
        if rule not in _RESTRICTED_RULES or not getattr(room.version, flag[str(rule)]):
            return None
        if room.membership(user_id) in ("invite", "join"):
            return None
        assert rules is not None
        allowed = [
            a.get("room_id") for a in rules.content.get("allow", []) or []
            if isinstance(a, dict) and a.get("type") == "m.room_membership"
        ]
        member_of_allowed = False
        known_allowed = False
        for other in allowed:
            if not isinstance(other, str) or not await is_resident(self._storage, other, self._server_name):
                continue
            known_allowed = True
            if await self._storage.db.read(_member_of(other, user_id)) == "join":
                member_of_allowed = True
                break
        if not known_allowed:
            raise MatrixError(
                Errcode.UNABLE_TO_AUTHORISE_JOIN,
                "This server is in none of the rooms whose members may join",
            )
        if not member_of_allowed:
            raise MatrixError(Errcode.FORBIDDEN, f"{user_id} is not in a room that allows joining")
        create = room.get("m.room.create")
        power = room.get("m.room.power_levels")
        assert create is not None
        needed = named_power_level("invite", power)
        for (etype, member), _ in sorted(room.state.items()):
            if etype != MEMBER or server_name_of(member) != self._server_name:
                continue
            if room.membership(member) == "join" and user_power_level(member, power, create) >= needed:
                return member
        raise MatrixError(Errcode.UNABLE_TO_GRANT_JOIN, "None of our users here may invite")

    # --- send_* ----------------------------------------------------------------------------------
    async def send_membership(
        self, origin: str, room_id: str, event_id: str, raw: Any, membership: str
    ) -> Event:
        """PUT send_join/send_leave/send_knock: the accepted event (co-signed if we authorised
        a restricted join). 400 for a malformed event, 403 when it is rejected or the room's
        server ACL denies the origin."""
        await check_server_acl(self._storage, room_id, origin)
        rv = await self._room_version(room_id)
        event = parse_member_event(
            raw, rv, origin=origin, room_id=room_id, event_id=event_id, membership=membership
        )
        pdu = pdu_for_federation(event)
        via = event.content.get("join_authorised_via_users_server") if membership == "join" else None
        if isinstance(via, str) and server_name_of(via) == self._server_name:
            pdu = add_event_signature(pdu, rv, self._server_name, self._key)
        # The origin is not a full participant yet and may not know the room's servers: we send
        # its event to them (server-server-api.md §Joining Rooms: "The resident server must
        # also send the event to other servers participating in the room"; Synapse does the same
        # for leaves and knocks), queued in the event's own transaction like our events.
        hooks = [self._sender.on_behalf_of(origin)] if self._sender is not None else []
        try:
            outcome = await self._ingest.receive_pdu(origin, pdu, extra_hooks=hooks)
        except PduDropped as e:
            raise MatrixError(Errcode.FORBIDDEN, f"event not accepted: {e.reason}") from None
        if self._sender is not None and outcome.stream_ordering is not None:
            self._sender.committed(room_id, [outcome.event])
        if outcome.rejected_reason is not None or outcome.soft_failed:
            why = outcome.rejected_reason or "it fails against the current state"
            raise MatrixError(Errcode.FORBIDDEN, f"event not accepted: {why}")
        return outcome.event

    async def _room_version(self, room_id: str) -> RoomVersion:
        if not await is_resident(self._storage, room_id, self._server_name):
            raise MatrixError(Errcode.NOT_FOUND, f"{self._server_name} is not in room {room_id}")
        room = await load_current(self._storage, room_id)
        return room.version

    async def send_join(
        self, origin: str, room_id: str, event_id: str, raw: Any, *, omit_members: bool = False
    ) -> SendJoinResult:
        """PUT /v2/send_join: the accepted join plus the room state before it and the auth
        chain of both."""
        await refuse_blocked_room(self._storage, room_id)
        join = await self.send_membership(origin, room_id, event_id, raw, "join")
        try:
            before = await self._loader.state_after(join.room_version, list(join.prev_event_ids))
        except StateUnavailable as e:
            raise MatrixError(Errcode.UNKNOWN, f"cannot compute the room state: {e}") from None
        state = dict(before.state)
        omitted = omit_members
        if omitted:
            state = self._without_members(state)
        chain_ids, servers = await self._storage.db.read(
            lambda c: _chain_and_servers(c, room_id, [*state.values(), join.event_id])
        )
        events = await self._loader.load_events([*state.values(), *chain_ids])
        return SendJoinResult(
            state=[pdu_for_federation(events[i]) for i in sorted(state.values()) if i in events],
            auth_chain=[pdu_for_federation(events[i]) for i in _oldest_first(chain_ids, events)],
            event=pdu_for_federation(join),
            members_omitted=omitted,
            servers_in_room=sorted(servers),
        )

    @staticmethod
    def _without_members(state: dict[StateKey, str]) -> dict[StateKey, str]:
        # NOTSPEC-lite: heroes are approximated by the first members in state-key order, which
        # is enough for a joining server to name an unnamed room.
        members = sorted(k for k in state if k[0] == MEMBER)
        keep = set(members[:_HEROES]) if ("m.room.name", "") not in state else set()
        return {k: v for k, v in state.items() if k[0] != MEMBER or k in keep}

    async def send_knock(self, origin: str, room_id: str, event_id: str, raw: Any) -> list[dict[str, Any]]:
        """PUT /v1/send_knock: the state the knocker sees (knock_room_state: full PDUs since
        Matrix 1.16, federation/room_state_hints.py)."""
        await refuse_blocked_room(self._storage, room_id)
        await self.send_membership(origin, room_id, event_id, raw, "knock")
        room = await load_current(self._storage, room_id, None)
        return state_hint_pdus([e for t in STRIPPED_STATE_TYPES if (e := room.get(t)) is not None])


def _oldest_first(event_ids: Iterable[str], events: Mapping[str, Event]) -> list[str]:
    """The auth chain in depth order, each event after the events it rests on. A joining server
    that reads the chain and then the state in order, keeping the last event of each state key
    (SyTest's federation client does), ends with the state, not an older event the chain holds
    for it (a replaced m.room.power_levels)."""
    return sorted((i for i in event_ids if i in events), key=lambda i: (events[i].depth, i))


def _member_of(room_id: str, user_id: str) -> Callable[[aiosqlite.Connection], Awaitable[str | None]]:
    async def read(conn: aiosqlite.Connection) -> str | None:
        event_id = await state_table.select_current_state_event_id(conn, room_id, MEMBER, user_id)
        stored = await events_table.select_event(conn, event_id) if event_id else None
        return stored.event.membership if stored is not None else None

    return read


async def _chain_and_servers(
    conn: aiosqlite.Connection, room_id: str, event_ids: Sequence[str]
) -> tuple[set[str], set[str]]:
    chain = await remote_table.select_auth_chain_ids(conn, event_ids)
    members = await state_table.select_members(conn, room_id, "join")
    return chain, {server_name_of(m) for m in members}
