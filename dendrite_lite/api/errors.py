"""The one place that turns exceptions into Matrix error responses, and the JSON body parser.

- MatrixError -> its status and `{errcode, error, ...extra}`.
- Werkzeug HTTP errors raised by routing or body reading -> the matching Matrix error
  (404/405 M_UNRECOGNIZED, 413 M_TOO_LARGE, others M_UNKNOWN with their status).
- Anything else -> 500 M_UNKNOWN; the traceback goes to the log, never to the client.
"""

from __future__ import annotations

import json
import logging
from typing import Any, cast

from quart import Quart, Response, jsonify, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, RequestEntityTooLarge

from dendrite_lite.api.limits import drain_request_body
from dendrite_lite.errors import Errcode, MatrixError

__all__ = ["register_error_handlers", "error_response", "json_body"]

log = logging.getLogger(__name__)

_ERRCODE_BY_HTTP_STATUS = {
    404: Errcode.UNRECOGNIZED,
    405: Errcode.UNRECOGNIZED,
    413: Errcode.TOO_LARGE,
}


def error_response(err: MatrixError) -> Response:
    response = jsonify(err.to_json())
    response.status_code = err.status
    retry_after_ms = err.extra.get("retry_after_ms")
    if isinstance(retry_after_ms, int):
        # Spec §Rate limiting: a 429 SHOULD carry Retry-After (whole seconds); retry_after_ms in
        # the body is deprecated but still read by older clients.
        response.headers["Retry-After"] = str(-(-retry_after_ms // 1000))
    return response


def _from_http_exception(exc: HTTPException) -> MatrixError:
    status = exc.code or 500
    if status == 404:
        msg = "Unrecognized request"
    elif status == 405:
        msg = f"Method {request.method} not allowed on this endpoint"
    elif status == 413:
        msg = "Request body too large"
    else:
        msg = exc.name
    return MatrixError(_ERRCODE_BY_HTTP_STATUS.get(status, Errcode.UNKNOWN), msg, status=status)


async def _handle_matrix_error(err: MatrixError) -> Response:
    return error_response(err)


async def _handle_any_exception(exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        if isinstance(exc, RequestEntityTooLarge):
            await drain_request_body()
        response = error_response(_from_http_exception(exc))
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response
    log.error("unhandled exception in %s %s", request.method, request.path, exc_info=exc)
    return error_response(MatrixError(Errcode.UNKNOWN, "Internal server error"))


def register_error_handlers(app: Quart) -> None:
    app.register_error_handler(MatrixError, _handle_matrix_error)
    # Also receives werkzeug HTTPExceptions (routing 404/405, body 413): Quart looks handlers up
    # along the exception's MRO, and HTTPException subclasses Exception.
    app.register_error_handler(Exception, _handle_any_exception)


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are Python extensions, not JSON.
    raise ValueError(f"{name} is not valid JSON")


async def json_body(*, allow_empty: bool = False) -> dict[str, Any]:
    """The request body as a JSON object.

    Not JSON (or not UTF-8) -> 400 M_NOT_JSON; JSON but not an object -> 400 M_BAD_JSON; larger
    than the body limit -> 413 M_TOO_LARGE (raised while reading). `allow_empty` turns an empty
    body into {} for the endpoints whose body is optional.
    """
    raw = cast(bytes, await request.get_data(cache=True, as_text=False))
    if allow_empty and not raw.strip():
        return {}
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError):
        raise MatrixError(Errcode.NOT_JSON, "Content not JSON.") from None
    if not isinstance(value, dict):
        raise MatrixError(Errcode.BAD_JSON, "Content must be a JSON object.")
    return value
