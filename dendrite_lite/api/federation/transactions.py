"""Federation API: transactions (data/api/server-server/transactions.yaml)."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify

from dendrite_lite.api.app import services
from dendrite_lite.api.errors import json_body
from dendrite_lite.api.federation.auth import authenticated_origin

__all__ = ["bp"]

bp = Blueprint("federation_transactions", __name__)


@bp.put("/_matrix/federation/v1/send/<txn_id>")
async def send_transaction(txn_id: str) -> Response:
    """PUT /_matrix/federation/v1/send/{txnId}"""
    origin = await authenticated_origin()
    body = await json_body()
    return jsonify(await services().federation_txns.receive(origin, txn_id, body))
