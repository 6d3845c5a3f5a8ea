"""Request body size limits (config `limits.max_request_bytes`), chosen per request path.

The limit is enforced while the body is read (api/http.py), for a Content-Length and for chunked
bodies alike; a declared Content-Length over it is refused before any of the body is read. Either
way the client gets 413 M_TOO_LARGE. Media uploads get `media.max_upload_bytes` instead, and
federation transactions their own bound.
"""

from __future__ import annotations

from collections.abc import Callable

from dendrite_lite.config import Config

__all__ = [
    "body_limit_for",
    "MEDIA_UPLOAD_PREFIXES",
    "FEDERATION_TXN_PREFIX",
    "FEDERATION_TXN_MAX_BYTES",
]

# Spec: content-repo.yaml (POST /upload, PUT /upload/{serverName}/{mediaId}).
MEDIA_UPLOAD_PREFIXES: tuple[str, ...] = (
    "/_matrix/media/v3/upload",
    "/_matrix/media/r0/upload",
)

# A federation transaction may carry 50 PDUs of up to 64 KiB each plus 100 EDUs
# (server-server-api.md §Transactions, §PDUs size limits), far over a client request limit.
# The receiver still refuses more than 50 PDUs / 100 EDUs after parsing.
FEDERATION_TXN_PREFIX = "/_matrix/federation/v1/send/"
FEDERATION_TXN_MAX_BYTES = 50 * 65536 + 100 * 65536


def body_limit_for(config: Config) -> Callable[[str], int | None]:
    """The body limit of a request, by its path."""
    default = config.limits.max_request_bytes
    upload = config.media.max_upload_bytes

    def limit(path: str) -> int | None:
        if path.startswith(MEDIA_UPLOAD_PREFIXES):
            return upload
        if path.startswith(FEDERATION_TXN_PREFIX):
            return FEDERATION_TXN_MAX_BYTES
        return default

    return limit
