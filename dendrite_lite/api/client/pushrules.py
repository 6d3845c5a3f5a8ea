"""Client-server API: push rules (pushrules.yaml). Only the `global` scope exists."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify, request

from dendrite_lite.api.app import services
from dendrite_lite.api.client.auth import authenticate
from dendrite_lite.api.errors import json_body
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.users.push_rules import RULE_ATTRIBUTES

__all__ = ["bp"]

bp = Blueprint("client_pushrules", __name__)

_RULE = "/_matrix/client/v3/pushrules/global/<kind>/<rule_id>"


def _check_attribute(attr: str) -> None:
    if attr not in RULE_ATTRIBUTES:
        raise MatrixError(Errcode.UNRECOGNIZED, "Unrecognized request", status=404)


@bp.get("/_matrix/client/v3/pushrules/")
async def get_all() -> Response:
    """GET /_matrix/client/v3/pushrules/"""
    svc = services()
    requester = await authenticate(svc)
    return jsonify(await svc.push_rules.all_rules(requester.user_id))


@bp.get("/_matrix/client/v3/pushrules/global/")
async def get_global() -> Response:
    """GET /_matrix/client/v3/pushrules/global/"""
    svc = services()
    requester = await authenticate(svc)
    return jsonify((await svc.push_rules.all_rules(requester.user_id))["global"])


@bp.get(_RULE)
async def get_rule(kind: str, rule_id: str) -> Response:
    """GET /_matrix/client/v3/pushrules/global/{kind}/{ruleId}"""
    svc = services()
    requester = await authenticate(svc)
    return jsonify(await svc.push_rules.get_rule(requester.user_id, kind, rule_id))


@bp.put(_RULE)
async def put_rule(kind: str, rule_id: str) -> Response:
    """PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}"""
    svc = services()
    requester = await authenticate(svc)
    body = await json_body()
    before, after = request.args.get("before"), request.args.get("after")
    await svc.push_rules.put_rule(requester.user_id, kind, rule_id, body, before=before, after=after)
    return jsonify({})


@bp.delete(_RULE)
async def delete_rule(kind: str, rule_id: str) -> Response:
    """DELETE /_matrix/client/v3/pushrules/global/{kind}/{ruleId}"""
    svc = services()
    requester = await authenticate(svc)
    await svc.push_rules.delete_rule(requester.user_id, kind, rule_id)
    return jsonify({})


@bp.get(f"{_RULE}/<attr>")
async def get_attribute(kind: str, rule_id: str, attr: str) -> Response:
    """GET /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/{enabled|actions}"""
    _check_attribute(attr)
    svc = services()
    requester = await authenticate(svc)
    return jsonify(await svc.push_rules.get_attribute(requester.user_id, kind, rule_id, attr))


@bp.put(f"{_RULE}/<attr>")
async def put_attribute(kind: str, rule_id: str, attr: str) -> Response:
    """PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/{enabled|actions}"""
    _check_attribute(attr)
    svc = services()
    requester = await authenticate(svc)
    body = await json_body()
    if attr not in body:
        raise MatrixError(Errcode.MISSING_PARAM, f"'{attr}' is required")
    if attr == "enabled":
        await svc.push_rules.set_enabled(requester.user_id, kind, rule_id, body[attr])
    else:
        await svc.push_rules.set_actions(requester.user_id, kind, rule_id, body[attr])
    return jsonify({})
