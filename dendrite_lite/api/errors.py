"""The one place that turns exceptions into Matrix error responses, and the JSON body parser.

- MatrixError -> its status and `{errcode, error, ...extra}`.
  Routing (404/405 M_UNRECOGNIZED) and body limits (413 M_TOO_LARGE) raise MatrixErrors too.
- Anything else -> 500 M_UNKNOWN; the traceback goes to the log, never to the client.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from dendrite_lite.api.http import Response, jsonify, request
from dendrite_lite.errors import Errcode, MatrixError

__all__ = ["error_response", "unhandled_error_response", "json_body"]

log = logging.getLogger(__name__)


def error_response(err: MatrixError) -> Response:
    response = jsonify(err.to_json())
    response.status_code = err.status
    retry_after_ms = err.extra.get("retry_after_ms")
    if isinstance(retry_after_ms, int):
        # Spec §Rate limiting: a 429 SHOULD carry Retry-After (whole seconds); retry_after_ms in
        # the body is deprecated but still read by older clients.
        response.headers["Retry-After"] = str(-(-retry_after_ms // 1000))
    return response


def unhandled_error_response(method: str, path: str, exc: BaseException) -> Response:
    log.error("unhandled exception in %s %s", method, path, exc_info=exc)
    return error_response(MatrixError(Errcode.UNKNOWN, "Internal server error"))


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are Python extensions, not JSON.
    raise ValueError(f"{name} is not valid JSON")


async def json_body(*, allow_empty: bool = False) -> dict[str, Any]:
    """The request body as a JSON object.

    Not JSON (or not UTF-8) -> 400 M_NOT_JSON; JSON but not an object -> 400 M_BAD_JSON; larger
    than the body limit -> 413 M_TOO_LARGE (raised while reading). `allow_empty` turns an empty
    body into {} for the endpoints whose body is optional.
    """
    raw = await request.get_data()
    if allow_empty and not raw.strip():
        return {}
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError):
        raise MatrixError(Errcode.NOT_JSON, "Content not JSON.") from None
    if not isinstance(value, dict):
        raise MatrixError(Errcode.BAD_JSON, "Content must be a JSON object.")
    return value
