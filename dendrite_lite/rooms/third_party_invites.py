"""Third-party invites: inviting an email address (client-server §Third-party invites,
server-server §Third-party invites, identity-service §Invitation storage).

Inviting (POST /rooms/{roomId}/invite with id_server/id_access_token/medium/address, and
/createRoom's invite_3pid): the address is looked up at the identity server; if a user is bound
to it, they get an ordinary invite (`invite` answers that user, MembershipService invites them);
otherwise the identity server stores the invite (/store-invite, with the room's and inviter's
display details) and the inviter sends an m.room.third_party_invite whose state key is the
token and whose content carries the identity server's public keys. The inviter must be able to
invite before anything is asked of the identity server.

Accepting: once someone binds the address, the identity server tells their homeserver
(/3pid/onbind) and hands over, per pending invite, a `signed` block {mxid, token} signed with
one of the keys in the room. That homeserver turns each into an m.room.member invite with
content.third_party_invite {display_name, signed}, sent by the original inviter:
- if it is in the room itself, it sends the event (the auth rules accept an invite from a
  sender who left: the signature stands in for the inviter);
- otherwise it asks a server in the room to (/exchange_third_party_invite/{roomId}: the
  inviter's server first), which checks and sends it, and invites the user's server as any
  invite of a remote user.
/join with `third_party_signed` does the same for the joining user before the join.

What the server sending the invite checks, beyond the auth rules (which verify the signature
against the room's keys): that the identity server still vouches for the key that signed,
through the key's `key_validity_url` (client-server §Third-party invites: "the server which is
already participating in the room ... MUST validate that the public key used for signing is
still valid"). A key rotated away, revoked, or an identity server that cannot be reached
means no invite.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.events.ids import is_valid_user_id, server_name_of
from dendrite_lite.events.third_party_invite import signing_keys
from dendrite_lite.federation.acl import check_server_acl
from dendrite_lite.federation.client import FederationError
from dendrite_lite.federation.joins import _remote_error, candidate_servers
from dendrite_lite.federation.membership_events import is_resident
from dendrite_lite.federation.remote_membership import FederatedMembership
from dendrite_lite.request_body import required_field
from dendrite_lite.rooms.access import MEMBER, RoomSnapshot, load_current
from dendrite_lite.rooms.pipeline import EventSpec, RoomPipeline
from dendrite_lite.storage import Storage
from dendrite_lite.users.identity_server import IdentityServers, ThreepidInvite

__all__ = ["ThirdPartyInvites", "THIRD_PARTY_INVITE"]

log = logging.getLogger(__name__)

THIRD_PARTY_INVITE = "m.room.third_party_invite"
# Invites one /3pid/onbind may hand us; each costs a key validity check and maybe a request
# to another server, and the endpoint is unauthenticated (the signatures are what counts).
MAX_ONBIND_INVITES = 100
_EXCHANGE = "/_matrix/federation/v1/exchange_third_party_invite"


def _forbidden(why: str) -> MatrixError:
    return MatrixError(Errcode.FORBIDDEN, why)


def _signed_block(signed: Any, mxid: str) -> dict[str, Any]:
    """A `signed` block as the identity server handed it over: for `mxid`, with a token."""
    if not isinstance(signed, dict) or not isinstance(signed.get("token"), str):
        raise MatrixError(Errcode.BAD_JSON, "signed must be an object with a token")
    if not isinstance(signed.get("signatures"), dict):
        raise MatrixError(Errcode.BAD_JSON, "signed must carry signatures")
    if signed.get("mxid") != mxid:
        raise _forbidden(f"the third-party invite was signed for {signed.get('mxid')!r}, not {mxid}")
    return signed


class ThirdPartyInvites:
    def __init__(
        self,
        storage: Storage,
        pipeline: RoomPipeline,
        identity: IdentityServers,
        *,
        server_name: str,
        federation: FederatedMembership | None = None,
    ) -> None:
        self._storage = storage
        self._pipeline = pipeline
        self._identity = identity
        self._server_name = server_name
        self._federation = federation

    # --- inviting ------------------------------------------------------------------------------
    async def invite(self, sender: str, room_id: str, invite: ThreepidInvite) -> str | None:
        """The user bound to the address (to be invited as usual), or None once the invite is
        stored at the identity server and the m.room.third_party_invite sent."""
        room = await load_current(
            self._storage, room_id,
            [(MEMBER, sender), ("m.room.canonical_alias", ""), ("m.room.avatar", ""), ("m.room.name", "")],
        )
        if room.membership(sender) != "join":
            raise _forbidden(f"{sender} is not in room {room_id}")
        if room.power_level(sender) < room.named_level("invite"):
            raise _forbidden(f"{sender} may not invite users into {room_id}")
        bound = await self._identity.lookup(
            invite.id_server, invite.id_access_token, invite.medium, invite.address
        )
        if bound is not None:
            return bound
        stored = await self._identity.store_invite(
            invite.id_server, invite.id_access_token, _store_invite_details(room, sender, invite)
        )
        await self._pipeline.send(
            room_id, EventSpec(sender, THIRD_PARTY_INVITE, stored.event_content(), stored.token)
        )
        return None

    # --- accepting -----------------------------------------------------------------------------
    async def on_bind(self, body: Mapping[str, Any]) -> None:
        """PUT /_matrix/federation/v1/3pid/onbind: each pending invite becomes a member event.
        One that cannot (a bad signature, a revoked key, a room nobody answers for) does not
        stop the others; the last such error is then the answer, as from Synapse, so the
        identity server (and SyTest) learns that an invite was refused."""
        mxid = required_field(body, "mxid", "string")
        if not is_valid_user_id(mxid) or server_name_of(mxid) != self._server_name:
            raise MatrixError(Errcode.INVALID_PARAM, f"{mxid!r} is not a user of this server")
        invites = body.get("invites", [])
        if not isinstance(invites, list):
            raise MatrixError(Errcode.BAD_JSON, "invites must be a list")
        refused: MatrixError | None = None
        for invite in invites[:MAX_ONBIND_INVITES]:
            room_id = invite.get("room_id") if isinstance(invite, dict) else None
            sender = invite.get("sender") if isinstance(invite, dict) else None
            try:
                if not isinstance(room_id, str) or not is_valid_user_id(sender):
                    raise MatrixError(Errcode.BAD_JSON, "an invite needs a room_id and a sender")
                assert isinstance(invite, dict) and isinstance(sender, str)
                signed = _signed_block(invite.get("signed"), mxid)
                await self._issue_or_forward(sender, mxid, room_id, signed)
            except MatrixError as e:
                log.warning("3pid onbind for %s: invite to %r not issued: %s", mxid, room_id, e.error)
                refused = e
        if refused is not None:
            raise refused

    async def accept_signed(
        self, user_id: str, room_id: str, signed: Any, servers: Sequence[str] = ()
    ) -> None:
        """POST /join with third_party_signed {sender, mxid, token, signatures}: the invite
        the signature stands for, before the user joins."""
        block = _signed_block(signed, user_id)
        sender = block.get("sender")
        if not is_valid_user_id(sender):
            raise MatrixError(Errcode.BAD_JSON, "third_party_signed.sender must be a user id")
        await self._issue_or_forward(sender, user_id, room_id, block, servers)

    async def exchange(self, origin: str, room_id: str, body: Mapping[str, Any]) -> None:
        """PUT /_matrix/federation/v1/exchange_third_party_invite/{roomId} from the invitee's
        server: check the partial member event and send it as ours."""
        content = body.get("content")
        tpi = content.get("third_party_invite") if isinstance(content, dict) else None
        sender, target = body.get("sender"), body.get("state_key")
        if (
            body.get("type") != MEMBER or body.get("room_id") != room_id
            or not isinstance(content, dict) or content.get("membership") != "invite"
            or not isinstance(tpi, dict)
        ):
            raise MatrixError(Errcode.BAD_JSON, "not a third-party invite of this room")
        if not is_valid_user_id(sender) or not is_valid_user_id(target):
            raise MatrixError(Errcode.BAD_JSON, "sender and state_key must be user ids")
        assert isinstance(sender, str) and isinstance(target, str)
        if server_name_of(target) != origin:
            raise _forbidden(f"{target} is not a user of {origin}")
        await check_server_acl(self._storage, room_id, origin)
        if not await is_resident(self._storage, room_id, self._server_name):
            raise MatrixError(Errcode.NOT_FOUND, f"{self._server_name} is not in room {room_id}")
        await self._issue(sender, target, room_id, _signed_block(tpi.get("signed"), target))

    async def _issue_or_forward(
        self, sender: str, target: str, room_id: str, signed: dict[str, Any],
        servers: Sequence[str] = (),
    ) -> None:
        if await is_resident(self._storage, room_id, self._server_name):
            await self._issue(sender, target, room_id, signed)
        else:
            await self._forward(sender, target, room_id, signed, servers)

    async def _issue(self, sender: str, target: str, room_id: str, signed: dict[str, Any]) -> None:
        """We are in the room: the invite, checked and sent by us on the inviter's behalf."""
        token = signed["token"]
        room = await load_current(self._storage, room_id, [(THIRD_PARTY_INVITE, token), (MEMBER, target)])
        invite = room.get(THIRD_PARTY_INVITE, token)
        if invite is None or not invite.content:
            raise _forbidden(f"no third-party invite in {room_id} for that token")
        if invite.sender != sender:
            raise _forbidden(f"the third-party invite was sent by {invite.sender}, not {sender}")
        if room.membership(target) in ("invite", "join"):
            return  # already done (a repeated onbind, or an invite that went another way)
        await self._check_keys(signed, invite.content)
        display_name = invite.content.get("display_name")
        content = {
            "membership": "invite",
            "third_party_invite": {
                "display_name": display_name if isinstance(display_name, str) else "",
                "signed": signed,
            },
        }
        target_server = server_name_of(target)
        if target_server == self._server_name or self._federation is None or await is_resident(
            self._storage, room_id, target_server
        ):
            await self._pipeline.send(room_id, EventSpec(sender, MEMBER, content, target))
        else:
            await self._federation.invite(sender, room_id, target, content)
        log.info("third-party invite of %s to %s by %s issued", target, room_id, sender)

    async def _check_keys(self, signed: Mapping[str, Any], invite_content: Mapping[str, Any]) -> None:
        """A key of the room's invite signed the block, and its identity server still says
        it is valid (a key without key_validity_url is valid indefinitely)."""
        keys = signing_keys(signed, invite_content)
        if not keys:
            raise _forbidden("the third-party invite is not signed by the identity server's keys")
        for key in keys:
            if key.key_validity_url is None:
                return
            if await self._identity.key_is_valid(key.key_validity_url, key.public_key):
                return
        raise _forbidden("the identity server no longer vouches for the key that signed the invite")

    async def _forward(
        self, sender: str, target: str, room_id: str, signed: dict[str, Any], servers: Sequence[str]
    ) -> None:
        """We are not in the room: a server that is sends the invite (the inviter's first)."""
        client = self._federation.client if self._federation is not None else None
        if client is None:
            raise MatrixError(Errcode.NOT_FOUND, f"Room {room_id} is not known to this server")
        candidates = candidate_servers(
            room_id, None, [server_name_of(sender), *servers], self._server_name
        )
        partial = {
            "type": MEMBER, "room_id": room_id, "sender": sender, "state_key": target,
            "content": {"membership": "invite", "third_party_invite": {"signed": signed}},
        }
        last: MatrixError | None = None
        for server in candidates:
            try:
                await client.put_json(server, f"{_EXCHANGE}/{quote(room_id, safe='')}", partial)
                return
            except FederationError as e:
                log.info("exchange_third_party_invite %s via %s failed: %s", room_id, server, e)
                last = _remote_error(e)
        raise last or MatrixError(Errcode.NOT_FOUND, f"No server to ask about {room_id}")


def _store_invite_details(room: RoomSnapshot, sender: str, invite: ThreepidInvite) -> dict[str, Any]:
    """/store-invite's body: the required fields and what the room and the inviter's member
    event say, for the email the identity server sends (v2_store_invite.yaml)."""
    details: dict[str, Any] = {
        "medium": invite.medium, "address": invite.address, "room_id": room.room_id,
        "sender": sender,
    }
    wanted = (
        ("room_alias", "m.room.canonical_alias", "", "alias"),
        ("room_avatar_url", "m.room.avatar", "", "url"),
        ("room_join_rules", "m.room.join_rules", "", "join_rule"),
        ("room_name", "m.room.name", "", "name"),
        ("room_type", "m.room.create", "", "type"),
        ("sender_display_name", MEMBER, sender, "displayname"),
        ("sender_avatar_url", MEMBER, sender, "avatar_url"),
    )
    for field, event_type, state_key, key in wanted:
        event = room.get(event_type, state_key)
        value = event.content.get(key) if event is not None else None
        if isinstance(value, str) and value:
            details[field] = value
    return details
