"""Invites across servers (server-server-api.md §Inviting to a room; invites-v2.yaml).

Inbound (PUT /v2/invite from the inviting server): the event is checked (room version we
support, an invite of one of our users sent by a user of the origin, the origin's signature),
signed by us as the invitee's server and, unless we are in the room (then it also arrives in a
transaction), stored as an out-of-band membership with the invite_room_state so /sync shows it
(checked and reduced to stripped events by federation/room_state_hints.py; we send full PDUs).

Outbound (a local user invites a remote user): the invite is built on our current state and
auth-checked, sent to the invitee's server, and the event it returns countersigned is what we
persist (through the federation ingest, which runs the same checks as for any PDU) and queue
for the other servers in the room.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from dendrite_lite.crypto.keys import ServerKey
from dendrite_lite.crypto.signing import KeyStore
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.events.event import Event
from dendrite_lite.events.ids import server_name_of
from dendrite_lite.events.pdu import event_from_pdu, pdu_for_federation
from dendrite_lite.events.room_versions import KNOWN_ROOM_VERSIONS
from dendrite_lite.events.signing import add_event_signature
from dendrite_lite.federation.acl import check_server_acl
from dendrite_lite.federation.checks import PduDropped, verify_pdu
from dendrite_lite.events.format import FormatError, validate_pdu
from dendrite_lite.federation.client import FederationClient, FederationError, RemoteError
from dendrite_lite.federation.ingest import FederationIngest
from dendrite_lite.federation.joins import _remote_error, _unknown_endpoint
from dendrite_lite.federation.membership_events import (
    build_member_event,
    is_resident,
    parse_member_event,
)
from dendrite_lite.federation.out_of_band import persist_out_of_band_membership
from dendrite_lite.federation.room_blocks import refuse_blocked_room
from dendrite_lite.federation.room_state_hints import checked_state_hints, state_hint_pdus
from dendrite_lite.federation.sender import FederationSender
from dendrite_lite.rooms.access import load_current
from dendrite_lite.storage import Storage
from dendrite_lite.storage import accounts as accounts_table
from dendrite_lite.sync.notifier import Notifier
from dendrite_lite.sync.room_sections import STRIPPED_STATE_TYPES

__all__ = ["InviteService"]

log = logging.getLogger(__name__)


class InviteService:
    def __init__(
        self,
        storage: Storage,
        notifier: Notifier,
        key_store: KeyStore,
        *,
        server_name: str,
        key: ServerKey,
        client: FederationClient | None = None,
        ingest: FederationIngest | None = None,
        sender: FederationSender | None = None,
    ) -> None:
        self._storage = storage
        self._notifier = notifier
        self._keys = key_store
        self._server_name = server_name
        self._key = key
        self._client = client
        self._ingest = ingest
        self._sender = sender

    # --- inbound ---------------------------------------------------------------------------------
    async def receive_invite(
        self,
        origin: str,
        room_id: str,
        event_id: str,
        room_version: Any,
        raw_event: Any,
        invite_room_state: Sequence[Any],
    ) -> dict[str, Any]:
        """PUT /v2/invite/{roomId}/{eventId}: the event signed by us too."""
        rv = KNOWN_ROOM_VERSIONS.get(room_version) if isinstance(room_version, str) else None
        if rv is None:
            raise MatrixError(
                Errcode.INCOMPATIBLE_ROOM_VERSION,
                f"This server does not support room version {room_version!r}",
                room_version=str(room_version),
            )
        # The room's ACL, when we hold its state (server-server-api.md §Server ACLs: /invite).
        await check_server_acl(self._storage, room_id, origin)
        await refuse_blocked_room(self._storage, room_id)
        event = parse_member_event(
            raw_event, rv, origin=origin, room_id=room_id, event_id=event_id,
            membership="invite", sender_is_target=False,
        )
        target = event.state_key or ""
        if server_name_of(target) != self._server_name:
            raise MatrixError(Errcode.FORBIDDEN, f"{target} is not a user of this server")
        account = await self._storage.db.read(lambda c: accounts_table.select_account(c, target))
        # An invite for a user we do not have is countersigned all the same and kept nowhere,
        # as Synapse does: invites-v2.yaml has no "unknown user" answer, and whether a user
        # exists is not the inviting server's to learn.
        deliverable = account is not None and not account.deactivated
        try:
            event = await verify_pdu(event, self._keys)
        except PduDropped as e:
            raise MatrixError(Errcode.FORBIDDEN, e.reason) from None
        hints = await checked_state_hints(
            invite_room_state, rv, room_id, self._keys, what="invite_room_state"
        )
        signed = add_event_signature(pdu_for_federation(event), rv, self._server_name, self._key)
        if deliverable and not await is_resident(self._storage, room_id, self._server_name):
            hooks = self._ingest.persist_hooks if self._ingest is not None else ()
            await persist_out_of_band_membership(
                self._storage, self._notifier, event_from_pdu(signed, rv), hints, hooks
            )
        return signed

    # --- outbound --------------------------------------------------------------------------------
    async def invite_remote(
        self, sender: str, room_id: str, target: str, content: Mapping[str, Any]
    ) -> Event:
        """A local user invites a user of another server. Raises MatrixError: 403 from the auth
        rules or the invitee's server, 502 when it cannot be reached."""
        if self._client is None or self._ingest is None:
            raise MatrixError(Errcode.FORBIDDEN, "Federation is disabled on this server")
        event = await build_member_event(
            self._storage, server_name=self._server_name, key=self._key, room_id=room_id,
            sender=sender, target=target, content=content,
        )
        destination = server_name_of(target)
        answer = await self._send_invite(destination, event, await self._stripped_state(room_id, sender))
        signed = self._countersigned(answer, event, destination)
        try:
            outcome = await self._ingest.receive_pdu(self._server_name, signed)
        except PduDropped as e:
            raise MatrixError(Errcode.FORBIDDEN, f"invite not stored: {e.reason}") from None
        if outcome.rejected_reason is not None or outcome.soft_failed:
            raise MatrixError(Errcode.FORBIDDEN, f"invite not accepted: {outcome.rejected_reason}")
        if outcome.stream_ordering is not None:
            await self._queue(outcome.event, outcome.stream_ordering)
        return outcome.event

    async def _send_invite(self, destination: str, event: Event, stripped: list[dict[str, Any]]) -> Any:
        """PUT /v2/invite, or the deprecated /v1/invite (the event itself, the stripped state
        in its unsigned, and the answer wrapped in `[200, body]`: invites-v1.yaml) to a server
        that does not serve v2, as Synapse falls back."""
        assert self._client is not None
        tail = f"invite/{quote(event.room_id, safe='')}/{quote(event.event_id, safe='')}"
        pdu = pdu_for_federation(event)
        try:
            try:
                return await self._client.put_json(
                    destination, f"/_matrix/federation/v2/{tail}",
                    {"room_version": event.room_version.identifier, "event": pdu, "invite_room_state": stripped},
                )
            except RemoteError as e:
                if not _unknown_endpoint(e):
                    raise
            legacy = {**pdu, "unsigned": {**pdu.get("unsigned", {}), "invite_room_state": stripped}}
            answer = await self._client.put_json(destination, f"/_matrix/federation/v1/{tail}", legacy)
            return answer[1] if isinstance(answer, list) and len(answer) == 2 else answer
        except FederationError as e:
            raise _remote_error(e) from None

    @staticmethod
    def _countersigned(answer: Any, event: Event, destination: str) -> dict[str, Any]:
        returned = answer.get("event") if isinstance(answer, dict) else None
        if not isinstance(returned, dict):
            raise MatrixError(Errcode.UNKNOWN, f"{destination} answered the invite without an event", status=502)
        try:
            validate_pdu(returned, event.room_version)
        except FormatError as e:
            # Synapse answers 400 M_BAD_JSON too (e.g. a float in a v6 event).
            raise MatrixError(Errcode.BAD_JSON, f"{destination} answered the invite with a bad event: {e.reason}") from None
        try:
            same = event_from_pdu(returned, event.room_version).event_id == event.event_id
        except (ValueError, TypeError):
            same = False
        sigs = returned.get("signatures")
        if not same or not isinstance(sigs, dict) or destination not in sigs:
            raise MatrixError(Errcode.UNKNOWN, f"{destination} did not countersign the invite", status=502)
        return returned

    async def _stripped_state(self, room_id: str, sender: str) -> list[dict[str, Any]]:
        """invite_room_state: full PDUs since Matrix 1.16 (room_state_hints)."""
        room = await load_current(self._storage, room_id, None)
        keys = [*((t, "") for t in STRIPPED_STATE_TYPES), ("m.room.member", sender)]
        return state_hint_pdus([e for t, k in keys if (e := room.get(t, k)) is not None])

    async def _queue(self, event: Event, position: int) -> None:
        """The invite goes to the other servers in the room like any event of ours (the
        ingest, which stored it, does not queue)."""
        if self._sender is None:
            return
        # The invitee's server has the event from /invite; unless it is in the room (then it
        # expects the event in a transaction too), a PDU of a room it does not know is noise.
        invitee_server = server_name_of(event.state_key or "")
        resident = await is_resident(self._storage, event.room_id, invitee_server)
        skip = frozenset() if resident else frozenset({invitee_server})
        write = await self._sender.prepare(event.room_id, [event], skip=skip)
        if write is None:
            return
        await self._storage.db.write(lambda c: write(c, [(event, position)]))
        self._sender.committed(event.room_id, [event])
