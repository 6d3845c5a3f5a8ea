"""Client-server API: pushers (pusher.yaml), the unsubscribe link of email notifications, and
the notification list (notifications.yaml)."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify, request

from dendrite_lite.api.app import services
from dendrite_lite.api.client.auth import authenticate
from dendrite_lite.api.client.html_pages import html_page, message
from dendrite_lite.api.client.query_args import int_arg
from dendrite_lite.api.errors import json_body
from dendrite_lite.users.email_notifier import UNSUBSCRIBE_PATH

__all__ = ["bp"]

bp = Blueprint("client_pushers", __name__)


@bp.get("/_matrix/client/v3/pushers")
async def get_pushers() -> Response:
    """GET /_matrix/client/v3/pushers"""
    svc = services()
    requester = await authenticate(svc)
    return jsonify(await svc.pushers.pushers(requester.user_id))


@bp.post("/_matrix/client/v3/pushers/set")
async def set_pusher() -> Response:
    """POST /_matrix/client/v3/pushers/set"""
    svc = services()
    requester = await authenticate(svc)
    await svc.pushers.set_pusher(requester.user_id, requester.device_id, await json_body())
    return jsonify({})


@bp.route(UNSUBSCRIBE_PATH, methods=["GET", "POST"])
async def unsubscribe() -> Response:
    """GET /_dendrite_lite/client/email/unsubscribe?token= (the link in an email notification;
    POST is the one-click unsubscribe of its List-Unsubscribe-Post header, RFC 8058)"""
    token = request.args.get("token", "")
    if not token or not await services().pushers.unsubscribe(token):
        return html_page(
            "This link does not work",
            message("It may be mistyped, or these notifications were already turned off."),
            status=404,
        )
    return html_page(
        "Unsubscribed",
        message("You will get no more email notifications at this address. You can turn them "
                "on again in your Matrix app's notification settings."),
    )


@bp.get("/_matrix/client/v3/notifications")
async def get_notifications() -> Response:
    """GET /_matrix/client/v3/notifications"""
    svc = services()
    requester = await authenticate(svc)
    limit = int_arg("limit") if "limit" in request.args else None
    return jsonify(await svc.notification_list.notifications(
        requester.user_id, requester.device_id, from_token=request.args.get("from"),
        limit=limit, only=request.args.get("only"),
    ))
