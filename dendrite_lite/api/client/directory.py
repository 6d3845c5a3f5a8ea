"""Client-server API: room aliases and the published room directory (directory.yaml,
list_public_rooms.yaml)."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, jsonify, request

from dendrite_lite.api.app import services
from dendrite_lite.api.client.auth import authenticate
from dendrite_lite.api.errors import json_body
from dendrite_lite.appservice.accounts import refuse_exclusive_alias
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.rooms import aliases, directory

__all__ = ["bp"]

bp = Blueprint("client_directory", __name__)

_V3 = "/_matrix/client/v3"


@bp.put(f"{_V3}/directory/room/<room_alias>")
async def put_alias(room_alias: str) -> Response:
    """PUT /_matrix/client/v3/directory/room/{roomAlias}"""
    svc = services()
    requester = await authenticate(svc)
    room_id = (await json_body()).get("room_id")
    if not isinstance(room_id, str) or not room_id.startswith("!"):
        raise MatrixError(Errcode.BAD_JSON if room_id is not None else Errcode.MISSING_PARAM, "room_id (a room id) is required")
    if svc.appservices:
        refuse_exclusive_alias(svc.appservices, room_alias, requester.app_service)
    await aliases.create_alias(
        svc.storage, server_name=svc.config.server.server_name,
        requester=requester.user_id, alias=room_alias, room_id=room_id,
        # An AS manages the aliases of its namespace, in rooms it need not be in (spec).
        require_joined=requester.app_service is None,
    )
    return jsonify({})


@bp.get(f"{_V3}/directory/room/<room_alias>")
async def get_alias(room_alias: str) -> Response:
    """GET /_matrix/client/v3/directory/room/{roomAlias}"""
    svc = services()
    federated = svc.federated_membership  # None when federation is disabled: local aliases only
    room_id, servers = await aliases.resolve_alias(
        svc.storage, server_name=svc.config.server.server_name, alias=room_alias,
        remote=federated.resolve_alias if federated is not None else None,
        ask_appservice=svc.appservice_requests.query_alias if svc.appservice_requests else None,
    )
    return jsonify({"room_id": room_id, "servers": servers})


@bp.delete(f"{_V3}/directory/room/<room_alias>")
async def delete_alias(room_alias: str) -> Response:
    """DELETE /_matrix/client/v3/directory/room/{roomAlias}"""
    svc = services()
    requester = await authenticate(svc)
    await aliases.delete_alias(
        svc.storage, svc.pipeline, server_name=svc.config.server.server_name,
        requester=requester.user_id, is_admin=requester.is_admin, alias=room_alias,
    )
    return jsonify({})


@bp.get(f"{_V3}/rooms/<room_id>/aliases")
@bp.get("/_matrix/client/r0/rooms/<room_id>/aliases")
async def get_room_aliases(room_id: str) -> Response:
    """GET /_matrix/client/v3/rooms/{roomId}/aliases

    NOTSPEC: also under r0, where synadm (the Synapse admin CLI) asks for it to show the rooms
    a user is in by alias."""
    svc = services()
    requester = await authenticate(svc)
    found = await aliases.local_aliases(
        svc.storage, requester=requester.user_id, room_id=room_id, is_admin=requester.is_admin
    )
    return jsonify({"aliases": found})


@bp.get(f"{_V3}/directory/list/room/<room_id>")
async def get_directory_visibility(room_id: str) -> Response:
    """GET /_matrix/client/v3/directory/list/room/{roomId}"""
    return jsonify({"visibility": await directory.get_visibility(services().storage, room_id)})


@bp.put(f"{_V3}/directory/list/room/<room_id>")
async def put_directory_visibility(room_id: str) -> Response:
    """PUT /_matrix/client/v3/directory/list/room/{roomId}"""
    svc = services()
    requester = await authenticate(svc)
    visibility = (await json_body(allow_empty=True)).get("visibility", "public")
    await directory.set_visibility(
        svc.storage, requester=requester.user_id, room_id=room_id, visibility=visibility
    )
    return jsonify({})


def _int_param(value: Any, name: str) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise MatrixError(Errcode.INVALID_PARAM, f"{name} must be an integer") from None


@bp.get(f"{_V3}/publicRooms")
async def get_public_rooms() -> Response:
    """GET /_matrix/client/v3/publicRooms"""
    svc = services()
    server = request.args.get("server")
    if server is not None and server != svc.config.server.server_name:
        # Our own directory is open to anyone; asking another server costs a federation
        # request, which only our users may make us send.
        await authenticate(svc)
    query = directory.PublicRoomsQuery(
        limit=_int_param(request.args.get("limit"), "limit"), since=request.args.get("since")
    )
    return jsonify(await svc.public_rooms.list(server, query))


@bp.post(f"{_V3}/publicRooms")
async def post_public_rooms() -> Response:
    """POST /_matrix/client/v3/publicRooms"""
    svc = services()
    await authenticate(svc)
    query = directory.query_from_body(await json_body(allow_empty=True))
    return jsonify(await svc.public_rooms.list(request.args.get("server"), query))
