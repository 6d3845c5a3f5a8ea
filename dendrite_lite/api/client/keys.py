"""Client-server API: end-to-end encryption keys (data/api/client-server/keys.yaml) and
cross-signing (cross_signing.yaml). Guests may upload, query and claim keys (guest_access.md)."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify, request

from dendrite_lite.api.app import services
from dendrite_lite.api.client.auth import authenticate, authenticate_with_password
from dendrite_lite.api.errors import json_body
from dendrite_lite.errors import Errcode, MatrixError

__all__ = ["bp"]

bp = Blueprint("client_keys", __name__)


@bp.post("/_matrix/client/v3/keys/upload")
async def upload_keys() -> Response:
    """POST /_matrix/client/v3/keys/upload"""
    svc = services()
    requester = await authenticate(svc, allow_guest=True)
    body = await json_body()
    if not requester.device_id:
        # An application service acting without ?device_id= (spec: such requests "fail to
        # complete operations which require a device ID").
        raise MatrixError(Errcode.UNKNOWN_DEVICE, "Uploading keys needs a device: send device_id")
    return jsonify(await svc.keys.upload(requester.user_id, requester.device_id, body))


@bp.post("/_matrix/client/v3/keys/query")
async def query_keys() -> Response:
    """POST /_matrix/client/v3/keys/query"""
    svc = services()
    requester = await authenticate(svc, allow_guest=True)
    body = await json_body()
    return jsonify(await svc.keys.query(requester.user_id, body))


@bp.post("/_matrix/client/v3/keys/claim")
async def claim_keys() -> Response:
    """POST /_matrix/client/v3/keys/claim"""
    svc = services()
    await authenticate(svc, allow_guest=True)
    body = await json_body()
    return jsonify(await svc.keys.claim(body))


@bp.get("/_matrix/client/v3/keys/changes")
async def key_changes() -> Response:
    """GET /_matrix/client/v3/keys/changes"""
    svc = services()
    requester = await authenticate(svc)
    since, until = request.args.get("from"), request.args.get("to")
    if since is None or until is None:
        raise MatrixError(Errcode.MISSING_PARAM, "from and to are required")
    changes = await svc.device_lists.key_changes(requester.user_id, since, until)
    return jsonify(changes.to_json())


# The /unstable forms predate Matrix 1.1; Synapse still serves them and SyTest uses them.
@bp.post("/_matrix/client/v3/keys/device_signing/upload")
@bp.post("/_matrix/client/unstable/keys/device_signing/upload")
async def upload_cross_signing_keys() -> Response:
    """POST /_matrix/client/v3/keys/device_signing/upload

    UIA (the account password) only when the upload would replace stored keys: the spec lets a
    client publish its first keys, or re-send the same ones, without it.
    """
    svc = services()
    requester = await authenticate(svc)
    body = await json_body()
    session = None
    if await svc.cross_signing.needs_auth(requester.user_id, body):
        requester, session, _ = await authenticate_with_password(
            svc, body, "replace cross-signing keys"
        )
    await svc.cross_signing.upload_keys(requester.user_id, body)
    if session is not None:
        svc.uia.finish(session)
    return jsonify({})


@bp.post("/_matrix/client/v3/keys/signatures/upload")
@bp.post("/_matrix/client/unstable/keys/signatures/upload")
async def upload_signatures() -> Response:
    """POST /_matrix/client/v3/keys/signatures/upload"""
    svc = services()
    requester = await authenticate(svc)
    body = await json_body()
    return jsonify(await svc.cross_signing.upload_signatures(requester.user_id, body))
