"""Membership across servers in one place, for the two callers that need it: the federation
membership endpoints (we are the resident server, or the invitee's) and the client membership
service (our user joins, is invited to, leaves or knocks on a room another server hosts).

server.py builds one `FederatedMembership`; the parts that talk to other servers are None when
federation is disabled.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dendrite_lite.crypto.keys import ServerKey
from dendrite_lite.crypto.signing import KeyStore
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.events.event import Event
from dendrite_lite.events.room_versions import RoomVersion, get_room_version
from dendrite_lite.federation.client import FederationClient
from dendrite_lite.federation.ingest import FederationIngest
from dendrite_lite.federation.invites import InviteService
from dendrite_lite.federation.joins import (
    MembershipHandshake,
    RemoteJoins,
    candidate_servers,
    resolve_remote_alias,
)
from dendrite_lite.federation.leaves import RemoteLeaves
from dendrite_lite.federation.membership_events import is_resident
from dendrite_lite.federation.resident import ResidentMembership
from dendrite_lite.federation.room_complexity import ComplexityLimit, RoomComplexity
from dendrite_lite.federation.sender import FederationSender
from dendrite_lite.rooms.access import membership_of
from dendrite_lite.storage import Storage
from dendrite_lite.storage import rooms as rooms_table
from dendrite_lite.storage import state as state_table
from dendrite_lite.sync.notifier import Notifier

__all__ = ["FederatedMembership"]


@dataclass(frozen=True, slots=True)
class FederatedMembership:
    server_name: str
    storage: Storage
    resident: ResidentMembership
    invites: InviteService
    client: FederationClient | None = None
    joins: RemoteJoins | None = None
    leaves: RemoteLeaves | None = None
    complexity: RoomComplexity | None = None

    @classmethod
    def build(
        cls,
        *,
        storage: Storage,
        notifier: Notifier,
        key_store: KeyStore,
        ingest: FederationIngest,
        server_name: str,
        key: ServerKey,
        client: FederationClient | None,
        sender: FederationSender | None,
        complexity_limit: ComplexityLimit | None = None,
    ) -> FederatedMembership:
        handshake = MembershipHandshake(client, server_name=server_name, key=key) if client else None
        return cls(
            server_name=server_name,
            storage=storage,
            resident=ResidentMembership(
                storage, ingest, server_name=server_name, key=key, sender=sender
            ),
            invites=InviteService(
                storage, notifier, key_store, server_name=server_name, key=key,
                client=client, ingest=ingest, sender=sender,
            ),
            client=client,
            joins=RemoteJoins(handshake, ingest) if handshake else None,
            leaves=RemoteLeaves(handshake, storage, notifier, key_store, key=key) if handshake else None,
            complexity=RoomComplexity(
                storage, server_name=server_name, client=client,
                limit=complexity_limit or ComplexityLimit(),
            ),
        )

    # --- for the client membership service -------------------------------------------------------
    async def is_resident(self, room_id: str) -> bool:
        return await is_resident(self.storage, room_id, self.server_name)

    async def resolve_alias(self, alias: str) -> tuple[str, list[str]]:
        if self.client is None:
            raise MatrixError(Errcode.NOT_FOUND, f"Room alias {alias} not found.")
        return await resolve_remote_alias(self.client, alias)

    async def _known_version(self, room_id: str) -> RoomVersion | None:
        room = await self.storage.db.read(lambda c: rooms_table.select_room(c, room_id))
        return get_room_version(room.room_version) if room is not None else None

    async def _servers(self, room_id: str, given: Iterable[str], user_id: str | None = None) -> list[str]:
        """Where to send a make_*: the given servers, the server of whoever invited `user_id`
        (an out-of-band invite or knock), the servers we last saw in the room, the room id's."""
        extra: list[str] = []
        if user_id is not None:
            inviter = await self._inviter(room_id, user_id)
            if inviter is not None:
                extra.append(inviter.partition(":")[2])
        members = await self.storage.db.read(lambda c: state_table.select_members(c, room_id, "join"))
        extra += sorted({m.partition(":")[2] for m in members})
        return candidate_servers(
            room_id, await self._known_version(room_id), [*given, *extra], self.server_name
        )

    async def _inviter(self, room_id: str, user_id: str) -> str | None:
        member = await membership_of(self.storage, room_id, user_id)
        return member.event.sender if member is not None else None

    def _require(self) -> tuple[RemoteJoins, RemoteLeaves]:
        if self.joins is None or self.leaves is None:
            raise MatrixError(Errcode.NOT_FOUND, "Federation is disabled on this server")
        return self.joins, self.leaves

    async def join(
        self, user_id: str, room_id: str, servers: Sequence[str], content: Mapping[str, Any]
    ) -> Event:
        joins, _ = self._require()
        candidates = await self._servers(room_id, servers, user_id)
        return await joins.join(user_id, room_id, candidates, content)

    async def check_complexity(self, user_id: str, room_id: str, servers: Sequence[str]) -> bool:
        """Before joining a remote room: 400 M_RESOURCE_LIMIT_EXCEEDED when it is too heavy for
        this server (room_complexity.py). True: measure it again once joined."""
        if self.complexity is None:
            return False
        candidates = await self._servers(room_id, servers, user_id)
        return await self.complexity.check_before_join(user_id, room_id, candidates)

    async def complexity_refusal(self, room_id: str) -> MatrixError | None:
        """Once joined: the error to leave with if the room is over the limit after all."""
        return await self.complexity.refusal_after_join(room_id) if self.complexity else None

    async def leave(self, user_id: str, room_id: str, content: Mapping[str, Any]) -> Event:
        _, leaves = self._require()
        candidates = await self._servers(room_id, (), user_id)
        return await leaves.leave(user_id, room_id, candidates, content)

    async def knock(
        self, user_id: str, room_id: str, servers: Sequence[str], content: Mapping[str, Any]
    ) -> Event:
        _, leaves = self._require()
        candidates = await self._servers(room_id, servers)
        return await leaves.knock(user_id, room_id, candidates, content)

    async def invite(self, sender: str, room_id: str, target: str, content: Mapping[str, Any]) -> Event:
        return await self.invites.invite_remote(sender, room_id, target, content)
