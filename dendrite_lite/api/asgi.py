"""The ASGI application of one listener: route, run the handler, answer in Matrix terms.

Per request, in order:
1. OPTIONS is a CORS preflight, answered 204 before routing (the spec: no endpoint logic runs);
2. the path and method are routed (404 / 405 M_UNRECOGNIZED otherwise);
3. `before_request` hooks (tests use them to intercept) and the handler run with the request bound;
4. whatever they raise becomes a Matrix error (api/errors.py), never a traceback;
5. every response gets the CORS headers and goes out as one start and one body message.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from dendrite_lite.api.cors import CORS_HEADERS
from dendrite_lite.api.errors import error_response, unhandled_error_response
from dendrite_lite.api.http import (
    ClientDisconnected,
    Message,
    Receive,
    Request,
    Response,
    Scope,
    Send,
    bind_request,
    jsonify,
    unbind_request,
)
from dendrite_lite.api.routing import Blueprint, Handler, Router
from dendrite_lite.errors import Errcode, MatrixError

__all__ = ["App"]

log = logging.getLogger(__name__)

BeforeHook = Callable[[], Awaitable[Any]]
_CORS = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in CORS_HEADERS.items()]


class App:
    def __init__(self, name: str, services: Any, body_limit: Callable[[str], int | None]) -> None:
        self.name = name
        self.services = services
        self.extensions: dict[str, Any] = {"dendrite_lite": services}
        self._body_limit = body_limit
        self._router = Router()
        self._before: list[BeforeHook] = []

    def register_blueprint(self, bp: Blueprint) -> None:
        self._router.add(bp.routes)

    def add_url_rule(
        self,
        rule: str,
        endpoint: str | None = None,
        view_func: Handler | None = None,
        methods: Sequence[str] = ("GET",),
    ) -> None:
        bp = Blueprint(endpoint or rule)
        bp.add_url_rule(rule, endpoint, view_func, methods)
        self.register_blueprint(bp)

    def before_request(self, hook: BeforeHook) -> BeforeHook:
        """Run `hook` before every routed handler; a non-None result is the response."""
        self._before.append(hook)
        return hook

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        req = Request(scope, receive, self._body_limit(scope["path"]))
        req.app = self
        token = bind_request(req)
        try:
            response = await self._respond(req)
        except ClientDisconnected:
            return
        finally:
            unbind_request(token)
        await _send(send, response, head=req.method == "HEAD")

    async def _respond(self, req: Request) -> Response:
        if req.method == "OPTIONS":
            return Response(b"", status=204)
        raw = req.scope.get("raw_path")
        path = raw.decode("latin-1") if raw else req.path
        match = self._router.match(path, req.method)
        try:
            if match.route is None:
                raise _no_route(req.method, match.allowed)
            req.view_args = match.values
            await req.refuse_declared_oversize()
            for hook in self._before:
                result = await hook()
                if result is not None:
                    return to_response(result)
            return to_response(await match.route.handler(**match.values))
        except MatrixError as e:
            response = error_response(e)
            if e.status == 405 and match.allowed:
                response.headers["Allow"] = ", ".join(sorted(match.allowed))
            return response
        except ClientDisconnected:
            raise
        except Exception as e:  # noqa: BLE001 - the one place every other failure is answered
            return unhandled_error_response(req.method, req.path, e)


def _no_route(method: str, allowed: frozenset[str]) -> MatrixError:
    if allowed:
        return MatrixError(
            Errcode.UNRECOGNIZED, f"Method {method} not allowed on this endpoint", status=405
        )
    return MatrixError(Errcode.UNRECOGNIZED, "Unrecognized request", status=404)


def to_response(result: Any) -> Response:
    """A handler's result: a Response, a JSON value, or (value, status[, headers])."""
    if isinstance(result, Response):
        return result
    if isinstance(result, tuple):
        body, status, *rest = result
        response = to_response(body)
        response.status_code = status
        if rest:
            response.headers.update(rest[0])
        return response
    return jsonify(result)


async def _send(send: Send, response: Response, *, head: bool) -> None:
    body = response.body
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()]
    headers.append((b"content-length", str(len(body)).encode("latin-1")))
    headers.extend(_CORS)
    start: Message = {"type": "http.response.start", "status": response.status_code, "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": b"" if head else body})


async def _lifespan(receive: Receive, send: Send) -> None:
    # Startup and shutdown are the server's business (server.py), not the app's.
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
