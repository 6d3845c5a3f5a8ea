"""Client-server API: thread subscriptions (MSC4306) and their changes (MSC4308's companion
endpoint), under the unstable prefixes Synapse and matrix-rust-sdk use; thread updates across
the user's rooms (MSC4360's companion endpoint). The logic is in rooms/thread_subscriptions.py
and rooms/thread_updates.py."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify, request

from dendrite_lite.api.app import services
from dendrite_lite.api.client.auth import authenticate
from dendrite_lite.api.client.query_args import int_arg
from dendrite_lite.api.errors import json_body
from dendrite_lite.rooms.thread_subscriptions import DEFAULT_LIMIT
from dendrite_lite.rooms.thread_updates import ThreadUpdatesService

__all__ = ["UNSTABLE_FEATURE", "bp"]

bp = Blueprint("client_thread_subscriptions", __name__)

# The /versions flag matrix-rust-sdk checks before it uses thread subscriptions (MSC4306
# §Unstable amendments; Synapse advertises it for MSC4306 and MSC4308 together).
UNSTABLE_FEATURE = "org.matrix.msc4306"

_SUBSCRIPTION = (
    "/_matrix/client/unstable/io.element.msc4306/rooms/<room_id>/thread/<root_id>/subscription"
)


@bp.get(_SUBSCRIPTION)
async def get_subscription(room_id: str, root_id: str) -> Response:
    """GET /_matrix/client/unstable/io.element.msc4306/rooms/{roomId}/thread/{eventId}/subscription"""
    svc = services()
    requester = await authenticate(svc)
    return jsonify(await svc.thread_subscriptions.get(requester.user_id, room_id, root_id))


@bp.put(_SUBSCRIPTION)
async def put_subscription(room_id: str, root_id: str) -> Response:
    """PUT /_matrix/client/unstable/io.element.msc4306/rooms/{roomId}/thread/{eventId}/subscription"""
    svc = services()
    requester = await authenticate(svc)
    body = await json_body(allow_empty=True)
    await svc.thread_subscriptions.subscribe(requester.user_id, room_id, root_id, body)
    return jsonify({})


@bp.delete(_SUBSCRIPTION)
async def delete_subscription(room_id: str, root_id: str) -> Response:
    """DELETE /_matrix/client/unstable/io.element.msc4306/rooms/{roomId}/thread/{eventId}/subscription"""
    svc = services()
    requester = await authenticate(svc)
    await svc.thread_subscriptions.unsubscribe(requester.user_id, room_id, root_id)
    return jsonify({})


@bp.get("/_matrix/client/unstable/io.element.msc4308/thread_subscriptions")
async def get_subscription_changes() -> Response:
    """GET /_matrix/client/unstable/io.element.msc4308/thread_subscriptions"""
    svc = services()
    requester = await authenticate(svc)
    args = request.args
    body = await svc.thread_subscriptions.page(
        requester.user_id,
        dir=args.get("dir"),
        from_token=args.get("from"),
        to_token=args.get("to"),
        limit=int_arg("limit", DEFAULT_LIMIT),
    )
    return jsonify(body)


@bp.get("/_matrix/client/unstable/io.element.msc4360/thread_updates")
async def get_thread_updates() -> Response:
    """GET /_matrix/client/unstable/io.element.msc4360/thread_updates"""
    svc = services()
    requester = await authenticate(svc)
    args = request.args
    body = await ThreadUpdatesService(svc.storage).page(
        requester.user_id,
        requester.device_id,
        dir=args.get("dir"),
        from_token=args.get("from"),
        to_token=args.get("to"),
        limit=int_arg("limit", 100),
    )
    return jsonify(body)
