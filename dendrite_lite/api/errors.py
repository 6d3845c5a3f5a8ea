"""The one place that turns exceptions into Matrix error responses, and the JSON body parser.

The app's error handlers (api/app.py) call these:
- MatrixError -> its status and `{errcode, error, ...extra}`;
- Werkzeug's HTTPExceptions from routing and body reading -> the same status in Matrix terms
  (404/405 M_UNRECOGNIZED with `Allow`, 413 M_TOO_LARGE, 408 when a body stops arriving);
- anything else -> 500 M_UNKNOWN; the traceback goes to the log, never to the client.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from quart import Response, jsonify, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from dendrite_lite.errors import Errcode, MatrixError

__all__ = ["error_response", "http_error_response", "unhandled_error_response", "json_body"]

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


# Statuses Werkzeug raises for us, and how they read to a Matrix client.
_HTTP_ERRORS: dict[int, tuple[Errcode, str]] = {
    404: (Errcode.UNRECOGNIZED, "Unrecognized request"),
    405: (Errcode.UNRECOGNIZED, "Method not allowed on this endpoint"),
    408: (Errcode.UNKNOWN, "The request body did not arrive in time"),
    413: (Errcode.TOO_LARGE, "Request body too large"),
}


def http_error_response(err: HTTPException) -> Response:
    status = err.code or 500
    errcode, message = _HTTP_ERRORS.get(status, (Errcode.UNKNOWN, err.name))
    if status == 405:
        message = f"Method {request.method} not allowed on this endpoint"
    response = error_response(MatrixError(errcode, message, status=status))
    if isinstance(err, MethodNotAllowed) and err.valid_methods:
        response.headers["Allow"] = ", ".join(sorted(err.valid_methods))
    if status == 408 and request.http_version.startswith("1"):
        response.headers["Connection"] = "close"  # the rest of the body is not coming
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
