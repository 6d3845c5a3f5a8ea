"""Client-server API of application services: ping (application_service.yaml), third-party
lookups (third_party_lookup.yaml) and the AS room directories (appservice_room_directory.yaml).
"""

from __future__ import annotations

from quart import Blueprint, Response, jsonify, request

from dendrite_lite.api.app import services
from dendrite_lite.api.client.auth import authenticate
from dendrite_lite.api.errors import json_body
from dendrite_lite.appservice import room_list
from dendrite_lite.appservice.requests import AppserviceRequests
from dendrite_lite.errors import Errcode, MatrixError

__all__ = ["bp"]

bp = Blueprint("client_appservice", __name__)

_V3 = "/_matrix/client/v3"


def _requests() -> AppserviceRequests | None:
    return services().appservice_requests


@bp.post("/_matrix/client/v1/appservice/<appservice_id>/ping")
async def post_ping(appservice_id: str) -> Response:
    """POST /_matrix/client/v1/appservice/{appserviceId}/ping"""
    requester = await authenticate(services())
    body = await json_body(allow_empty=True)
    requests = _requests()
    if requests is None:
        raise MatrixError(Errcode.FORBIDDEN, "Only the appservice itself may ping it")
    duration = await requests.ping(requester.app_service, appservice_id, body.get("transaction_id"))
    return jsonify({"duration_ms": duration})


@bp.get(f"{_V3}/thirdparty/protocols")
async def get_protocols() -> Response:
    """GET /_matrix/client/v3/thirdparty/protocols"""
    await authenticate(services())
    requests = _requests()
    return jsonify(await requests.protocols() if requests is not None else {})


@bp.get(f"{_V3}/thirdparty/protocol/<protocol>")
async def get_protocol(protocol: str) -> Response:
    """GET /_matrix/client/v3/thirdparty/protocol/{protocol}"""
    await authenticate(services())
    requests = _requests()
    if requests is None:
        raise MatrixError(Errcode.NOT_FOUND, f"Unknown protocol {protocol}")
    return jsonify(await requests.protocol(protocol))


@bp.get(f"{_V3}/thirdparty/<any(user, location):kind>/<protocol>")
@bp.get(f"{_V3}/thirdparty/<any(user, location):kind>", defaults={"protocol": None})
async def get_thirdparty_lookup(kind: str, protocol: str | None) -> Response:
    """GET /_matrix/client/v3/thirdparty/{user,location}[/{protocol}]"""
    await authenticate(services())
    requests = _requests()
    params = {k: v for k, v in request.args.items() if k not in ("access_token",)}
    found = await requests.lookup(kind, protocol, params) if requests is not None else []
    return jsonify(found)


@bp.put(f"{_V3}/directory/list/appservice/<network_id>/<room_id>")
async def put_appservice_room_list(network_id: str, room_id: str) -> Response:
    """PUT /_matrix/client/v3/directory/list/appservice/{networkId}/{roomId}"""
    svc = services()
    requester = await authenticate(svc)
    visibility = (await json_body()).get("visibility")
    await room_list.set_visibility(
        svc.storage, requester.app_service, network_id, room_id, visibility
    )
    return jsonify({})


@bp.delete(f"{_V3}/directory/list/appservice/<network_id>/<room_id>")
async def delete_appservice_room_list(network_id: str, room_id: str) -> Response:
    """DELETE /_matrix/client/v3/directory/list/appservice/{networkId}/{roomId} (Synapse's;
    the spec's PUT with visibility "private" does the same)"""
    svc = services()
    requester = await authenticate(svc)
    await room_list.set_visibility(svc.storage, requester.app_service, network_id, room_id, "private")
    return jsonify({})
