"""Request body size limits (config `limits.max_request_bytes`).

Quart enforces the limit while the body is read, for a Content-Length and for chunked bodies
alike, raising a 413 that api/errors.py renders as M_TOO_LARGE. A body whose Content-Length is
already too large is refused before the handler runs, so no handler work is wasted on it.
Media uploads get `media.max_upload_bytes` instead: the limit is chosen per request path when the
request object is created, because Quart fixes it then.
"""

from __future__ import annotations

from typing import Any

from quart import Quart, request
from quart.wrappers import Request
from werkzeug.exceptions import RequestEntityTooLarge

from dendrite_lite.config import Config

__all__ = ["register_body_limits", "MEDIA_UPLOAD_PREFIXES"]

# Spec: content-repo.yaml (POST /upload, PUT /upload/{serverName}/{mediaId}).
MEDIA_UPLOAD_PREFIXES: tuple[str, ...] = (
    "/_matrix/media/v3/upload",
    "/_matrix/media/r0/upload",
)


class _LimitedRequest(Request):
    # Set on the per-app subclass made by register_body_limits (requests are created before any
    # app context exists, so the limit cannot be read from current_app here).
    upload_limit: int | None = None

    def __init__(self, method: str, scheme: str, path: str, *args: Any, **kwargs: Any) -> None:
        if path.startswith(MEDIA_UPLOAD_PREFIXES):
            kwargs["max_content_length"] = self.upload_limit
            self.max_content_length = self.upload_limit
        super().__init__(method, scheme, path, *args, **kwargs)


async def _refuse_declared_oversize() -> None:
    length = request.content_length
    limit = request.max_content_length
    if length is not None and limit is not None and length > limit:
        raise RequestEntityTooLarge()


def register_body_limits(app: Quart, config: Config) -> None:
    app.config["MAX_CONTENT_LENGTH"] = config.limits.max_request_bytes
    app.request_class = type(
        "LimitedRequest", (_LimitedRequest,), {"upload_limit": config.media.max_upload_bytes}
    )
    app.before_request(_refuse_declared_oversize)
