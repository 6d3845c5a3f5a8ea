"""Client-server API: third-party ids at identity servers (administrative_contact.yaml:
/account/3pid/bind, /account/3pid/unbind, /account/3pid/delete). The rules are
users/threepid_bindings.py's.

bind and unbind are also served under /_matrix/client/unstable, where they were first (MSC2290;
Synapse still serves them there and SyTest calls them so).
"""

from __future__ import annotations

from quart import Blueprint, Response, jsonify

from dendrite_lite.api.app import services
from dendrite_lite.api.client.auth import authenticate
from dendrite_lite.api.errors import json_body
from dendrite_lite.users.threepid_bindings import parse_threepid

__all__ = ["bp"]

bp = Blueprint("client_threepid_binding", __name__)


@bp.post("/_matrix/client/v3/account/3pid/bind")
@bp.post("/_matrix/client/unstable/account/3pid/bind")
async def post_bind() -> Response:
    """POST /_matrix/client/v3/account/3pid/bind"""
    svc = services()
    requester = await authenticate(svc)
    await svc.threepid_bindings.bind(requester.user_id, await json_body())
    return jsonify({})


@bp.post("/_matrix/client/v3/account/3pid/unbind")
@bp.post("/_matrix/client/unstable/account/3pid/unbind")
async def post_unbind() -> Response:
    """POST /_matrix/client/v3/account/3pid/unbind"""
    svc = services()
    requester = await authenticate(svc)
    medium, address, id_server = parse_threepid(await json_body())
    result = await svc.threepid_bindings.unbind(requester.user_id, medium, address, id_server)
    return jsonify({"id_server_unbind_result": result})


@bp.post("/_matrix/client/v3/account/3pid/delete")
async def post_delete() -> Response:
    """POST /_matrix/client/v3/account/3pid/delete"""
    svc = services()
    requester = await authenticate(svc)
    medium, address, id_server = parse_threepid(await json_body())
    result = await svc.threepid_bindings.delete(requester.user_id, medium, address, id_server)
    return jsonify({"id_server_unbind_result": result})
