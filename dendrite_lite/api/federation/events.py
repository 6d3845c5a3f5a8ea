"""Federation API: reading events and state (data/api/server-server/events.yaml,
backfill.yaml, event_auth.yaml)."""

from __future__ import annotations

import time
from typing import Any

from quart import Blueprint, Response, jsonify, request

from dendrite_lite.api.app import services
from dendrite_lite.api.errors import json_body
from dendrite_lite.api.federation.auth import authenticated_origin
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.federation.room_reads import DEFAULT_MISSING_EVENTS

__all__ = ["bp"]

bp = Blueprint("federation_events", __name__)

_V1 = "/_matrix/federation/v1"


def _required_arg(name: str) -> str:
    value = request.args.get(name)
    if not value:
        raise MatrixError(Errcode.MISSING_PARAM, f"Missing query parameter {name}")
    return value


def _int(value: Any, name: str, default: int | None = None) -> int:
    if value is None and default is not None:
        return default
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise MatrixError(Errcode.INVALID_PARAM, f"{name} must be an integer")


def _event_ids(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise MatrixError(Errcode.BAD_JSON, f"{name} must be a list of event IDs")
    return value


def _transaction(pdus: list[dict[str, Any]]) -> dict[str, Any]:
    """The single_pdu_transaction / unlimited_pdu_transaction shape."""
    origin = services().config.server.server_name
    return {"origin": origin, "origin_server_ts": int(time.time() * 1000), "pdus": pdus}


@bp.get(f"{_V1}/event/<event_id>")
async def get_event(event_id: str) -> Response:
    """GET /_matrix/federation/v1/event/{eventId}"""
    origin = await authenticated_origin()
    return jsonify(_transaction([await services().federation_reads.get_event(origin, event_id)]))


@bp.get(f"{_V1}/state/<room_id>")
async def get_state(room_id: str) -> Response:
    """GET /_matrix/federation/v1/state/{roomId}"""
    origin = await authenticated_origin()
    event_id = _required_arg("event_id")
    return jsonify(await services().federation_reads.state_pdus(origin, room_id, event_id))


@bp.get(f"{_V1}/state_ids/<room_id>")
async def get_state_ids(room_id: str) -> Response:
    """GET /_matrix/federation/v1/state_ids/{roomId}"""
    origin = await authenticated_origin()
    event_id = _required_arg("event_id")
    state = await services().federation_reads.state(origin, room_id, event_id)
    return jsonify({
        "pdu_ids": [s.event.event_id for s in state.state],
        "auth_chain_ids": [s.event.event_id for s in state.auth_chain],
    })


@bp.get(f"{_V1}/event_auth/<room_id>/<event_id>")
async def get_event_auth(room_id: str, event_id: str) -> Response:
    """GET /_matrix/federation/v1/event_auth/{roomId}/{eventId}"""
    origin = await authenticated_origin()
    return jsonify({"auth_chain": await services().federation_reads.event_auth(origin, room_id, event_id)})


@bp.get(f"{_V1}/backfill/<room_id>")
async def get_backfill(room_id: str) -> Response:
    """GET /_matrix/federation/v1/backfill/{roomId}"""
    origin = await authenticated_origin()
    event_ids = request.args.getlist("v")
    if not event_ids:
        raise MatrixError(Errcode.MISSING_PARAM, "Missing query parameter v")
    limit = _int(_required_arg("limit"), "limit")
    pdus = await services().federation_reads.backfill(origin, room_id, event_ids, limit)
    return jsonify(_transaction(pdus))


@bp.post(f"{_V1}/get_missing_events/<room_id>")
async def post_get_missing_events(room_id: str) -> Response:
    """POST /_matrix/federation/v1/get_missing_events/{roomId}"""
    origin = await authenticated_origin()
    body = await json_body()
    events = await services().federation_reads.get_missing_events(
        origin,
        room_id,
        # Absent lists are empty, as Synapse reads them (SyTest posts `{}`); a wrong type is 400.
        _event_ids(body.get("earliest_events", []), "earliest_events"),
        _event_ids(body.get("latest_events", []), "latest_events"),
        _int(body.get("limit"), "limit", DEFAULT_MISSING_EVENTS),
        _int(body.get("min_depth"), "min_depth", 0),
    )
    return jsonify({"events": events})


@bp.get(f"{_V1}/timestamp_to_event/<room_id>")
async def get_timestamp_to_event(room_id: str) -> Response:
    """GET /_matrix/federation/v1/timestamp_to_event/{roomId}"""
    origin = await authenticated_origin()
    ts = _int(_required_arg("ts"), "ts")
    direction = _required_arg("dir")
    if direction not in ("f", "b"):
        raise MatrixError(Errcode.INVALID_PARAM, "dir must be f or b")
    event_id, event_ts = await services().federation_reads.timestamp_to_event(
        origin, room_id, ts, forwards=direction == "f"
    )
    return jsonify({"event_id": event_id, "origin_server_ts": event_ts})
