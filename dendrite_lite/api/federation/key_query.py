"""Federation API: the notary key query (data/api/server-server/keys_query.yaml).

Answers with each queried server's own signed key responses (cached, or fetched directly when
the cache is not valid long enough), each also signed by us. Unauthenticated, like
/_matrix/key/v2/server: a server asking for keys may not know ours yet.
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, jsonify, request

from dendrite_lite.api.app import services
from dendrite_lite.api.errors import json_body
from dendrite_lite.config import is_valid_server_name
from dendrite_lite.errors import Errcode, MatrixError

__all__ = ["bp", "MAX_SERVERS_PER_QUERY"]

bp = Blueprint("federation_key_query", __name__)

# Each unknown server can cost a fetch; a bounded batch keeps one request from making us
# contact thousands of servers.
MAX_SERVERS_PER_QUERY = 100


def _timestamp(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise MatrixError(Errcode.INVALID_PARAM, f"{name} must be an integer")
    return value


@bp.get("/_matrix/key/v2/query/<server_name>")
@bp.get("/_matrix/key/v2/query/<server_name>/<key_id>")
async def query_one(server_name: str, key_id: str | None = None) -> Response:
    """GET /_matrix/key/v2/query/{serverName}

    The `/{keyId}` form left the spec in v1.6 (its key id was ignored by then); Synapse still
    serves it for older servers, and so do we, answering with every key as the spec form does."""
    raw = request.args.get("minimum_valid_until_ts")
    if raw is not None and not raw.lstrip("-").isdigit():
        raise MatrixError(Errcode.INVALID_PARAM, "minimum_valid_until_ts must be an integer")
    minimum = int(raw) if raw is not None else None
    if not is_valid_server_name(server_name):
        return jsonify({"server_keys": []})
    # No key ids: every key of the server, valid until at least `minimum`.
    keys = await services().keyring.notary_query({server_name: {}}, minimum)
    return jsonify({"server_keys": keys})


@bp.post("/_matrix/key/v2/query")
async def query_many() -> Response:
    """POST /_matrix/key/v2/query"""
    body = await json_body()
    server_keys = body.get("server_keys")
    if not isinstance(server_keys, dict):
        raise MatrixError(Errcode.BAD_JSON, "server_keys must be an object")
    if len(server_keys) > MAX_SERVERS_PER_QUERY:
        raise MatrixError(Errcode.LIMIT_EXCEEDED, f"at most {MAX_SERVERS_PER_QUERY} servers per query", status=400)
    queries: dict[str, dict[str, int | None]] = {}
    for server_name, criteria in server_keys.items():
        if not isinstance(criteria, dict):
            raise MatrixError(Errcode.BAD_JSON, f"server_keys.{server_name} must be an object")
        if not is_valid_server_name(server_name):
            continue
        queries[server_name] = {
            key_id: _timestamp(
                c.get("minimum_valid_until_ts") if isinstance(c, dict) else None,
                f"server_keys.{server_name}.{key_id}.minimum_valid_until_ts",
            )
            for key_id, c in criteria.items()
        }
    return jsonify({"server_keys": await services().keyring.notary_query(queries)})
