"""Client-server API: email addresses this server validates itself (administrative_contact.yaml,
the requestToken endpoints of registration.yaml and password_management.yaml), and the
confirmation link the emails carry. The rules are users/threepids.py's.

Phone numbers (msisdn) are not supported: their requestToken endpoints answer 400
M_THREEPID_MEDIUM_NOT_SUPPORTED.
"""

from __future__ import annotations

import html

from quart import Blueprint, Response, jsonify, redirect, request

from dendrite_lite.api.app import services
from dendrite_lite.api.client.auth import (
    authenticate,
    authenticate_with_password,
    client_ip,
)
from dendrite_lite.api.errors import json_body
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.users import threepids

__all__ = ["bp"]

bp = Blueprint("client_threepids", __name__)


async def _request_token(purpose: str) -> Response:
    svc = services()
    body = await json_body()
    svc.ratelimits.email_ip.check(client_ip() or "")
    sid = await svc.email_validation.request_token(purpose, body)
    return jsonify({"sid": sid})


@bp.post("/_matrix/client/v3/register/email/requestToken")
async def post_register_email_request_token() -> Response:
    """POST /_matrix/client/v3/register/email/requestToken"""
    config = services().config
    if config.registration.mode not in ("open", "token"):
        raise MatrixError(Errcode.FORBIDDEN, "Registration is disabled")
    if config.registration.email == "off":
        raise MatrixError(
            Errcode.THREEPID_MEDIUM_NOT_SUPPORTED, "Registration with an email address is off"
        )
    return await _request_token(threepids.PURPOSE_REGISTER)


@bp.post("/_matrix/client/v3/account/3pid/email/requestToken")
async def post_account_email_request_token() -> Response:
    """POST /_matrix/client/v3/account/3pid/email/requestToken"""
    return await _request_token(threepids.PURPOSE_ADD)


@bp.post("/_matrix/client/v3/account/password/email/requestToken")
async def post_password_email_request_token() -> Response:
    """POST /_matrix/client/v3/account/password/email/requestToken"""
    return await _request_token(threepids.PURPOSE_PASSWORD)


@bp.post("/_matrix/client/v3/register/msisdn/requestToken")
@bp.post("/_matrix/client/v3/account/3pid/msisdn/requestToken")
@bp.post("/_matrix/client/v3/account/password/msisdn/requestToken")
async def post_msisdn_request_token() -> Response:
    """POST /_matrix/client/v3/{register,account/3pid,account/password}/msisdn/requestToken"""
    raise MatrixError(
        Errcode.THREEPID_MEDIUM_NOT_SUPPORTED, "This server does not support phone numbers"
    )


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
</head>
<body>
<h1>{title}</h1>
<p>{text}</p>
</body>
</html>
"""


def _page(title: str, text: str, status: int) -> Response:
    body = _PAGE.format(title=html.escape(title), text=html.escape(text))
    return Response(body, status=status, content_type="text/html; charset=utf-8")


@bp.get(threepids.SUBMIT_TOKEN_PATH)
async def get_submit_token() -> Response:
    """GET /_dendrite_lite/client/email/submit_token (the link in the email)"""
    args = request.args
    try:
        next_link = await services().email_validation.submit_token(
            args.get("sid"), args.get("client_secret"), args.get("token")
        )
    except MatrixError as e:
        return _page("This link does not work", e.error, e.status)
    if next_link is not None:
        return redirect(next_link, 302)
    return _page(
        "Email address confirmed",
        "Thank you. You can close this page and go back to your app.",
        200,
    )


@bp.get("/_matrix/client/v3/account/3pid")
async def get_account_3pids() -> Response:
    """GET /_matrix/client/v3/account/3pid"""
    svc = services()
    requester = await authenticate(svc)
    found = await threepids.user_threepids(svc.storage, requester.user_id)
    return jsonify({"threepids": [t.to_json() for t in found]})


@bp.post("/_matrix/client/v3/account/3pid/add")
async def post_account_3pid_add() -> Response:
    """POST /_matrix/client/v3/account/3pid/add"""
    svc = services()
    body = await json_body()
    requester, session, params = await authenticate_with_password(svc, body, "add 3pid")
    creds = {"sid": params.get("sid"), "client_secret": params.get("client_secret")}
    # Synapse's answer for creds of no validated session: 400 M_THREEPID_AUTH_FAILED.
    await _add(requester.user_id, creds, status=400)
    svc.uia.finish(session)
    return jsonify({})


@bp.post("/_matrix/client/v3/account/3pid")
async def post_account_3pid() -> Response:
    """POST /_matrix/client/v3/account/3pid (deprecated)

    NOTSPEC: the spec makes this /3pid/bind (an identity server's binding); like Synapse it
    also adds an address this server validated (three_pid_creds of our own session) to the
    account, which is what clients and SyTest still use it for.
    """
    svc = services()
    requester = await authenticate(svc)
    body = await json_body()
    creds = body.get("three_pid_creds", body.get("threePidCreds"))
    # The spec's answer for creds that cannot be verified: 403 M_THREEPID_AUTH_FAILED.
    await _add(requester.user_id, creds, status=403)
    return jsonify({})


async def _add(user_id: str, creds: object, *, status: int) -> None:
    try:
        await threepids.add_to_account(services().storage, user_id, creds)
    except threepids.NotValidated:
        raise MatrixError(
            Errcode.THREEPID_AUTH_FAILED,
            "No validated email session: follow the link in the email first",
            status=status,
        ) from None
