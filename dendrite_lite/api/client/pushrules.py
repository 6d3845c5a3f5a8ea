"""Client-server API: push rules (pushrules.yaml). Only the `global` scope exists.

Every path under /pushrules/ is parsed here rather than routed rule by rule, because what a
trailing slash means is part of the API: `/pushrules/global/` lists the scope and
`/pushrules/global/room/` lists one kind, while a path that stops short (`/pushrules/global`,
`/pushrules/global/room`, an empty rule ID) or names an unknown scope, kind or attribute is a
malformed request: 400 M_UNRECOGNIZED, as Synapse answers (SyTest 61push/80torture.pl). A path
that is well formed but names no rule is 404 M_NOT_FOUND.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from quart import Blueprint, Response, jsonify, request

from dendrite_lite.api.app import services
from dendrite_lite.api.client.auth import authenticate
from dendrite_lite.api.errors import json_body
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.users.push_rules import RULE_ATTRIBUTES

__all__ = ["bp"]

bp = Blueprint("client_pushrules", __name__)

_ROOT = "/_matrix/client/v3/pushrules/"


def _unrecognized(why: str) -> MatrixError:
    return MatrixError(Errcode.UNRECOGNIZED, f"Unrecognized push rules request: {why}", status=400)


def _raw_path() -> str:
    raw = request.scope.get("raw_path")
    return raw.decode("latin-1").split("?", 1)[0] if raw else request.path


def _segments() -> list[str]:
    """The path after /pushrules/, split on the slashes as sent (a %2F stays in its segment)."""
    return [unquote(part) for part in _raw_path()[len(_ROOT):].split("/")]


@dataclass(frozen=True, slots=True)
class _RulePath:
    kind: str
    rule_id: str
    attr: str | None


def _rule_path(parts: list[str]) -> _RulePath:
    """global/{kind}/{ruleId}[/{attr}], or 400 M_UNRECOGNIZED."""
    if parts[0] != "global":
        raise _unrecognized("the only scope is 'global'")
    if len(parts) < 3:  # an unknown kind is the ruleset's M_INVALID_PARAM
        raise _unrecognized("expected global/{kind}/{ruleId}")
    if not parts[2]:
        raise _unrecognized("empty rule ID")
    if len(parts) > 4 or (len(parts) == 4 and parts[3] not in RULE_ATTRIBUTES):
        raise _unrecognized(f"a rule's attributes are {', '.join(RULE_ATTRIBUTES)}")
    return _RulePath(parts[1], parts[2], parts[3] if len(parts) == 4 else None)


@bp.get(_ROOT)
async def get_all() -> Response:
    """GET /_matrix/client/v3/pushrules/"""
    if not _raw_path().endswith("/"):
        # The router also matches /pushrules; that is no endpoint (Synapse answers 404 too).
        raise MatrixError(Errcode.UNRECOGNIZED, "Unrecognized request", status=404)
    svc = services()
    requester = await authenticate(svc)
    return jsonify(await svc.push_rules.all_rules(requester.user_id))


@bp.get(f"{_ROOT}<path:_rest>")
async def get_path(_rest: str) -> Response:
    """GET /_matrix/client/v3/pushrules/global/[{kind}/[{ruleId}[/{enabled|actions}]]]"""
    svc = services()
    requester = await authenticate(svc)
    parts = _segments()
    if parts == ["global", ""]:
        return jsonify((await svc.push_rules.all_rules(requester.user_id))["global"])
    if len(parts) == 3 and parts[0] == "global" and parts[2] == "":
        return jsonify(await svc.push_rules.kind_rules(requester.user_id, parts[1]))
    target = _rule_path(parts)
    if target.attr is None:
        return jsonify(await svc.push_rules.get_rule(requester.user_id, target.kind, target.rule_id))
    return jsonify(
        await svc.push_rules.get_attribute(requester.user_id, target.kind, target.rule_id, target.attr)
    )


@bp.put(_ROOT)
@bp.delete(_ROOT)
async def change_root() -> Response:
    """PUT/DELETE /_matrix/client/v3/pushrules/: no rule named"""
    await authenticate(services())
    raise _unrecognized("expected global/{kind}/{ruleId}")


@bp.put(f"{_ROOT}<path:_rest>")
async def put_path(_rest: str) -> Response:
    """PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}[/{enabled|actions}]"""
    svc = services()
    requester = await authenticate(svc)
    target = _rule_path(_segments())
    body = await json_body()
    user_id, kind, rule_id = requester.user_id, target.kind, target.rule_id
    if target.attr is None:
        before, after = request.args.get("before"), request.args.get("after")
        await svc.push_rules.put_rule(user_id, kind, rule_id, body, before=before, after=after)
    elif target.attr not in body:
        raise MatrixError(Errcode.MISSING_PARAM, f"'{target.attr}' is required")
    elif target.attr == "enabled":
        await svc.push_rules.set_enabled(user_id, kind, rule_id, body["enabled"])
    else:
        await svc.push_rules.set_actions(user_id, kind, rule_id, body["actions"])
    return jsonify({})


@bp.delete(f"{_ROOT}<path:_rest>")
async def delete_path(_rest: str) -> Response:
    """DELETE /_matrix/client/v3/pushrules/global/{kind}/{ruleId}"""
    svc = services()
    requester = await authenticate(svc)
    target = _rule_path(_segments())
    if target.attr is not None:
        raise _unrecognized("only a whole rule can be deleted")
    await svc.push_rules.delete_rule(requester.user_id, target.kind, target.rule_id)
    return jsonify({})
