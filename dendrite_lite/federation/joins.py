"""Our users joining rooms on other servers (server-server-api.md §Joining Rooms; joins-v2.yaml).

1. Candidate servers: the `via`/`server_name` the client gave, the servers an alias resolved
   to, then (before v12, whose room ids carry no server) the room id's server. Ourselves never.
2. make_join to each in turn until one answers with a template: the room version must be one we
   support and the template must be the join we asked for (room, sender, state key, type,
   membership), else the next server.
3. Our event from the template (our origin_server_ts, our content on top of the template's,
   `join_authorised_via_users_server` kept), hashed and signed; send_join to the same server.
4. The answer's state and auth chain are verified and stored by the federation ingest
   (persist_join_state), the join becomes the room's first timeline event: /sync shows the room,
   and our later events there go out through the outbox to the servers in it.

The make/send handshake is shared with leaves (leaves.py) and knocks (knocks.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from dendrite_lite.crypto.keys import ServerKey
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.events.event import Event
from dendrite_lite.events.ids import new_legacy_event_id
from dendrite_lite.events.pdu import event_from_pdu, pdu_for_federation
from dendrite_lite.events.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from dendrite_lite.events.signing import hash_and_sign_event
from dendrite_lite.federation.checks import PduDropped, parse_pdu
from dendrite_lite.federation.client import (
    FederationClient,
    FederationError,
    RemoteError,
    UnreachableError,
)
from dendrite_lite.federation.ingest import FederationIngest
from dendrite_lite.federation.membership_events import MEMBER

__all__ = [
    "RemoteJoins",
    "MembershipHandshake",
    "Handshake",
    "candidate_servers",
    "resolve_remote_alias",
]

log = logging.getLogger(__name__)

_FED_V1 = "/_matrix/federation/v1"
_FED_V2 = "/_matrix/federation/v2"


def candidate_servers(room_id: str, rv_hint: RoomVersion | None, given: Iterable[str], us: str) -> list[str]:
    """Servers to ask, in order, without duplicates and without ourselves. A room id's server
    part is only a hint before v12 (and there is none from v12 on)."""
    out = list(dict.fromkeys(s for s in given if s))
    if ":" in room_id and (rv_hint is None or not rv_hint.room_id_is_create_event_hash):
        out.append(room_id.split(":", 1)[1])
    return [s for s in dict.fromkeys(out) if s != us]


async def resolve_remote_alias(client: FederationClient, alias: str) -> tuple[str, list[str]]:
    """GET /query/directory on the alias's server: (room_id, servers), for joins and for the
    client's GET /directory/room/{roomAlias}.

    Every failure is 404 M_NOT_FOUND, the one error directory.yaml gives ("There is no mapped
    room ID for this room alias"), and its message says which: the server's own answer, or that
    it could not be reached (then a retry may succeed)."""
    server = alias.split(":", 1)[1] if ":" in alias else ""
    try:
        answer = await client.get_json(
            server, f"{_FED_V1}/query/directory", query={"room_alias": alias}
        )
    except UnreachableError as e:
        raise MatrixError(
            Errcode.NOT_FOUND,
            f"Room alias {alias} not resolved: {server} could not be reached ({e.message})",
        ) from None
    except FederationError as e:
        raise MatrixError(Errcode.NOT_FOUND, f"Room alias {alias} not found ({e.message})") from None
    room_id = answer.get("room_id") if isinstance(answer, dict) else None
    servers = answer.get("servers") if isinstance(answer, dict) else None
    if not isinstance(room_id, str) or not room_id.startswith("!"):
        raise MatrixError(
            Errcode.NOT_FOUND, f"Room alias {alias} not found ({server} sent no room id)"
        )
    return room_id, [s for s in servers if isinstance(s, str)] if isinstance(servers, list) else []


@dataclass(frozen=True, slots=True)
class Handshake:
    """A make_* answer turned into our signed event, and the server that gave it."""

    server: str
    room_version: RoomVersion
    event: Event


def _remote_error(e: FederationError) -> MatrixError:
    if isinstance(e, RemoteError) and e.errcode is not None and 400 <= e.status < 500:
        body = e.body if isinstance(e.body, dict) else {}
        extra = {k: v for k, v in body.items() if k not in ("errcode", "error")}
        return MatrixError(e.errcode, str(body.get("error") or e.message), status=e.status, **extra)
    return MatrixError(Errcode.UNKNOWN, f"{e.destination} did not answer: {e.message}", status=502)


class MembershipHandshake:
    """make_{join,leave,knock} then send_{join,leave,knock} with the first server that agrees."""

    def __init__(self, client: FederationClient, *, server_name: str, key: ServerKey) -> None:
        self.client = client
        self.server_name = server_name
        self._key = key

    async def make(
        self, servers: Sequence[str], room_id: str, user_id: str, membership: str,
        content: Mapping[str, Any],
    ) -> Handshake:
        """Ask each server for a template until one gives a usable one. Raises MatrixError:
        the last server's error (403, 400 M_INCOMPATIBLE_ROOM_VERSION...) or 404 when no server
        could be asked."""
        if not servers:
            raise MatrixError(Errcode.NOT_FOUND, f"No known servers to {membership} {room_id}")
        last: MatrixError | None = None
        for server in servers:
            try:
                answer = await self.client.get_json(
                    server,
                    f"{_FED_V1}/make_{membership}/{quote(room_id, safe='')}/{quote(user_id, safe='')}",
                    query={"ver": list(KNOWN_ROOM_VERSIONS)} if membership != "leave" else None,
                )
                return Handshake(server, *self._from_template(answer, room_id, user_id, membership, content))
            except FederationError as e:
                log.info("make_%s %s via %s failed: %s", membership, room_id, server, e)
                last = _remote_error(e)
            except MatrixError as e:
                log.info("make_%s %s via %s: unusable answer: %s", membership, room_id, server, e)
                last = e
        assert last is not None
        if last.status >= 500:
            # Nobody could be asked (clients treat 404 as "no such room" and stop retrying).
            raise MatrixError(Errcode.NOT_FOUND, f"Cannot {membership} {room_id}: {last.error}")
        raise last

    def _from_template(
        self, answer: Any, room_id: str, user_id: str, membership: str, content: Mapping[str, Any]
    ) -> tuple[RoomVersion, Event]:
        if not isinstance(answer, dict) or not isinstance(answer.get("event"), dict):
            raise MatrixError(Errcode.BAD_JSON, "make_* answer without an event", status=502)
        version_id = answer.get("room_version", "1")
        rv = KNOWN_ROOM_VERSIONS.get(version_id) if isinstance(version_id, str) else None
        if rv is None:
            raise MatrixError(
                Errcode.INCOMPATIBLE_ROOM_VERSION, f"room version {version_id!r} is not supported",
                room_version=str(version_id),
            )
        template = answer["event"]
        tcontent = template.get("content")
        if (
            template.get("room_id") != room_id
            or template.get("sender") != user_id
            or template.get("state_key") != user_id
            or template.get("type") != MEMBER
            or not isinstance(tcontent, dict)
            or tcontent.get("membership") != membership
        ):
            raise MatrixError(Errcode.BAD_JSON, "the template is not the membership asked for", status=502)
        pdu = {k: v for k, v in template.items() if k not in ("hashes", "signatures", "unsigned", "event_id")}
        pdu["content"] = {**tcontent, **content, "membership": membership}
        pdu["origin_server_ts"] = int(time.time() * 1000)
        if "origin" in pdu:
            pdu["origin"] = self.server_name
        if rv.event_id_in_event:
            pdu["event_id"] = new_legacy_event_id(self.server_name)
        signed = hash_and_sign_event(pdu, rv, self.server_name, self._key)
        try:
            # Our own event must pass the format rules the receiver applies.
            return rv, parse_pdu(signed, rv)
        except PduDropped as e:
            raise MatrixError(Errcode.BAD_JSON, f"the template makes a bad event: {e.reason}", status=502) from None

    async def send(self, hs: Handshake, membership: str) -> Any:
        """send_{membership} to the server that gave the template (v2; v1 for knocks, and for
        joins and leaves when the server does not know v2)."""
        tail = f"send_{membership}/{quote(hs.event.room_id, safe='')}/{quote(hs.event.event_id, safe='')}"
        pdu = pdu_for_federation(hs.event)
        try:
            if membership == "knock":
                return await self.client.put_json(hs.server, f"{_FED_V1}/{tail}", pdu)
            try:
                return await self.client.put_json(hs.server, f"{_FED_V2}/{tail}", pdu)
            except RemoteError as e:
                if not _unknown_endpoint(e):
                    raise
            # The deprecated v1 answers `[200, body]` (server-server-api.md, joins-v1.yaml);
            # Synapse falls back the same way for servers that predate v2.
            answer = await self.client.put_json(hs.server, f"{_FED_V1}/{tail}", pdu)
            if isinstance(answer, list) and len(answer) == 2:
                return answer[1]
            return answer
        except FederationError as e:
            raise _remote_error(e) from None


def _unknown_endpoint(e: RemoteError) -> bool:
    """The peer does not serve the endpoint at all (Synapse's `_is_unknown_endpoint`): a 404
    for a room it does not know carries M_NOT_FOUND and is not retried."""
    if e.status in (404, 405):
        return e.errcode in (None, "M_UNRECOGNIZED")
    return e.status == 400 and e.errcode == "M_UNRECOGNIZED"


class RemoteJoins:
    def __init__(self, handshake: MembershipHandshake, ingest: FederationIngest) -> None:
        self._hs = handshake
        self._ingest = ingest
        # Told (succeeded, seconds) after every join attempt (metrics).
        self.on_finished: Callable[[bool, float], None] | None = None

    async def join(
        self, user_id: str, room_id: str, servers: Sequence[str], content: Mapping[str, Any]
    ) -> Event:
        """Join `user_id` to the remote `room_id` through one of `servers` (already ordered,
        ourselves excluded). Returns our join event once stored. Raises MatrixError."""
        started = time.perf_counter()
        ok = False
        try:
            event = await self._join(user_id, room_id, servers, content)
            ok = True
            return event
        finally:
            if self.on_finished is not None:
                self.on_finished(ok, time.perf_counter() - started)

    async def _join(
        self, user_id: str, room_id: str, servers: Sequence[str], content: Mapping[str, Any]
    ) -> Event:
        hs = await self._hs.make(servers, room_id, user_id, "join", content)
        answer = await self._hs.send(hs, "join")
        if not isinstance(answer, dict):
            raise MatrixError(Errcode.UNKNOWN, "send_join answer is not an object", status=502)
        join_pdu: Any = pdu_for_federation(hs.event)
        returned = answer.get("event")
        # A restricted join comes back co-signed by the authorising server; same event otherwise.
        if isinstance(returned, dict) and _same_event(returned, hs.event):
            join_pdu = returned
        if not isinstance(answer.get("state"), list) or not isinstance(answer.get("auth_chain"), list):
            raise MatrixError(Errcode.UNKNOWN, "send_join answer without state/auth_chain", status=502)
        try:
            join = await self._ingest.verified_join(hs.room_version, join_pdu)
            # Handed over, not kept: the parsed state of a big room (megabytes) is freed once
            # stored, before the join is persisted.
            state = await self._ingest.store_join_state(join, answer.pop("state"), answer.pop("auth_chain"))
            persisted = await self._ingest.persist_join(join, state)
        except PduDropped as e:
            raise MatrixError(
                Errcode.UNKNOWN, f"the room state from {hs.server} is not usable: {e.reason}", status=502
            ) from None
        log.info("%s joined %s via %s", user_id, room_id, hs.server)
        return persisted.event


def _same_event(pdu: Mapping[str, Any], event: Event) -> bool:
    try:
        return event_from_pdu(pdu, event.room_version).event_id == event.event_id
    except (ValueError, TypeError):
        return False
