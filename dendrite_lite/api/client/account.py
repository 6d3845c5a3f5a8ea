"""Client-server API: whoami, password change, deactivation (data/api/client-server/whoami.yaml,
password_management.yaml, account_deactivation.yaml)."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify

from dendrite_lite.api.app import services
from dendrite_lite.api.client.auth import access_token, authenticate, authenticate_with_password
from dendrite_lite.api.errors import json_body
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.request_body import optional_field
from dendrite_lite.rooms.membership import MembershipService
from dendrite_lite.users.account_management import (
    change_password,
    deactivate_account,
    reset_password_by_email,
)

__all__ = ["bp"]

bp = Blueprint("client_account", __name__)


@bp.get("/_matrix/client/v3/account/whoami")
async def get_whoami() -> Response:
    """GET /_matrix/client/v3/account/whoami"""
    requester = await authenticate(services(), allow_guest=True)
    body = {"user_id": requester.user_id, "device_id": requester.device_id, "is_guest": requester.is_guest}
    if not requester.device_id:  # an application service acting without ?device_id=
        del body["device_id"]
    return jsonify(body)


@bp.post("/_matrix/client/v3/account/password")
async def post_password() -> Response:
    """POST /_matrix/client/v3/account/password

    Without an access token (and with [email] set up) it is a forgotten-password reset: UIA
    m.login.email.identity with a session of /account/password/email/requestToken proves the
    account.
    """
    svc = services()
    body = await json_body()
    if access_token() is None and svc.email_validation.enabled:
        return await _reset_password_by_email(body)
    requester, session, params = await authenticate_with_password(svc, body, "change password")
    logout_devices = _logout_devices(params)
    await change_password(
        svc.storage, requester, params.get("new_password"), logout_devices=logout_devices
    )
    await svc.device_lists.changed(requester.user_id)
    svc.uia.finish(session)
    return jsonify({})


def _logout_devices(params: dict) -> bool:
    logout_devices = params.get("logout_devices", True)
    if not isinstance(logout_devices, bool):
        raise MatrixError(Errcode.INVALID_PARAM, "logout_devices must be a boolean")
    return logout_devices


async def _reset_password_by_email(body: dict) -> Response:
    svc = services()
    session, params = await svc.uia.prove_email(
        svc.storage, body, server_name=svc.config.server.server_name
    )
    assert session.threepid is not None  # the flow's one stage sets it
    user_id = await reset_password_by_email(
        svc.storage, session.threepid, params.get("new_password"),
        logout_devices=_logout_devices(params),
    )
    await svc.device_lists.changed(user_id)
    svc.uia.finish(session)
    return jsonify({})


@bp.post("/_matrix/client/v3/account/deactivate")
async def post_deactivate() -> Response:
    """POST /_matrix/client/v3/account/deactivate"""
    svc = services()
    body = await json_body()
    id_server = optional_field(body, "id_server", "string")  # where to unbind the 3PIDs
    requester, session, _ = await authenticate_with_password(svc, body, "deactivate")
    membership = MembershipService(
        svc.storage, svc.pipeline, svc.config.server.server_name, svc.federated_membership
    )
    unbound = await deactivate_account(
        svc.storage, requester.user_id, membership=membership, erase=body.get("erase") is True,
        bindings=svc.threepid_bindings, id_server=id_server,
    )
    await svc.device_lists.changed(requester.user_id)
    svc.uia.finish(session)
    return jsonify({"id_server_unbind_result": unbound})
