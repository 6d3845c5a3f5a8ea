"""URL previews (authed-content-repo.yaml getUrlPreviewAuthed; content-repo.yaml, deprecated).

Off unless media.url_preview_enabled: then the endpoint answers 404 M_UNRECOGNIZED after
authentication, as Synapse does (a client then hides previews). The legacy /_matrix/media path
needs an access token too, as it always did. The work is media/preview.py's.
"""

from __future__ import annotations

from quart import Blueprint, Response, request

from dendrite_lite.api.app import services
from dendrite_lite.api.client.auth import authenticate
from dendrite_lite.api.client.query_args import int_arg
from dendrite_lite.errors import Errcode, MatrixError

__all__ = ["bp"]

bp = Blueprint("client_preview_url", __name__)


@bp.get("/_matrix/client/v1/media/preview_url")
@bp.get("/_matrix/media/v3/preview_url")
@bp.get("/_matrix/media/r0/preview_url")
async def preview_url() -> Response:
    """GET /_matrix/client/v1/media/preview_url"""
    svc = services()
    requester = await authenticate(svc)
    if svc.url_previews is None:
        raise MatrixError(Errcode.UNRECOGNIZED, "URL previews are disabled", status=404)
    url = request.args.get("url")
    if not url:
        raise MatrixError(Errcode.MISSING_PARAM, "Missing url parameter")
    if "ts" in request.args:
        int_arg("ts")  # checked only: the spec allows a newer preview, and the newest is all we keep
    og_json = await svc.url_previews.preview(url, requester.user_id)
    return Response(og_json, mimetype="application/json")
