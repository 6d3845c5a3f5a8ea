"""Our users leaving or knocking on rooms we are not in, through a server that is
(server-server-api.md §Leaving Rooms (Rejecting Invites), §Knocking upon a room).

- leave: rejecting an invite received over federation, or taking back a knock: make_leave and
  send_leave (v2) to the inviting server (or another in the room). When none of them takes it
  (refused, failing, unreachable), the rejection is made here only, as Synapse does: a leave we
  build on the invite (or knock), stored out of band, so the user is not stuck with an invite
  they cannot decline. The inviting server still shows them invited.
- knock: make_knock and send_knock; the answer's knock_room_state is what /sync shows.
Both results are stored as out-of-band memberships (federation/out_of_band.py).

A leave from a room we are in goes through the local pipeline and the outbox instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from dendrite_lite.crypto.keys import ServerKey
from dendrite_lite.crypto.signing import KeyStore
from dendrite_lite.errors import MatrixError
from dendrite_lite.events.builder import build_event
from dendrite_lite.events.event import Event
from dendrite_lite.federation.joins import MembershipHandshake
from dendrite_lite.federation.out_of_band import persist_out_of_band_membership
from dendrite_lite.federation.room_state_hints import checked_state_hints
from dendrite_lite.rooms.access import membership_of
from dendrite_lite.storage import Storage
from dendrite_lite.sync.notifier import Notifier

__all__ = ["RemoteLeaves"]

log = logging.getLogger(__name__)


class RemoteLeaves:
    def __init__(
        self,
        handshake: MembershipHandshake,
        storage: Storage,
        notifier: Notifier,
        key_store: KeyStore,
        *,
        key: ServerKey,
    ) -> None:
        self._hs = handshake
        self._key = key
        self._storage = storage
        self._notifier = notifier
        self._keys = key_store

    async def leave(
        self, user_id: str, room_id: str, servers: Sequence[str], content: Mapping[str, Any]
    ) -> Event:
        """Leave (reject an invite / rescind a knock) through one of `servers`. Raises
        MatrixError with the remote server's error."""
        try:
            hs = await self._hs.make(servers, room_id, user_id, "leave", content)
            await self._hs.send(hs, "leave")
            event = hs.event
        except MatrixError as e:
            local = await self._local_leave(user_id, room_id, content)
            if local is None:
                raise
            log.info("%s leaves %s here only: no server took the leave (%s)", user_id, room_id, e.error)
            event = local
        await persist_out_of_band_membership(self._storage, self._notifier, event)
        return event

    async def _local_leave(self, user_id: str, room_id: str, content: Mapping[str, Any]) -> Event | None:
        """A leave following the user's out-of-band invite or knock (Synapse's
        _generate_local_out_of_band_leave); None when they have neither."""
        member = await membership_of(self._storage, room_id, user_id)
        if member is None or member.event.membership not in ("invite", "knock"):
            return None
        previous = member.event
        return build_event(
            room_version=previous.room_version, server_name=self._hs.server_name, key=self._key,
            sender=user_id, event_type="m.room.member", content=content, state_key=user_id,
            origin_server_ts=int(time.time() * 1000), room_id=room_id,
            state={("m.room.member", user_id): previous}, prev_events=[previous],
        )

    async def knock(
        self, user_id: str, room_id: str, servers: Sequence[str], content: Mapping[str, Any]
    ) -> Event:
        """Knock through one of `servers`; /sync then shows the room under `knock`."""
        hs = await self._hs.make(servers, room_id, user_id, "knock", content)
        answer = await self._hs.send(hs, "knock")
        given = answer.get("knock_room_state") if isinstance(answer, dict) else None
        hints = await checked_state_hints(
            given if isinstance(given, list) else [], hs.event.room_version, room_id, self._keys,
            what="knock_room_state", refuse=False,
        )
        await persist_out_of_band_membership(self._storage, self._notifier, hs.event, hints)
        return hs.event
