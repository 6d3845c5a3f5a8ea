"""The HTTP error model over real HTTP: every error is Matrix JSON with the right status and CORS
headers, whatever raised it (routing, body limits, JSON parsing, handlers, bugs)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from quart import Blueprint, Quart, jsonify

from dendrite_lite.api.errors import json_body
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.server import Listener
from tests.conftest import RunningServer, launch
from tests.integration.test_endpoints import assert_cors

LIMIT = 100  # limits.max_request_bytes of the test server

calls: dict[str, int] = {"count": 0}
bp = Blueprint("test_errors", __name__)


@bp.post("/_test/echo")
async def echo():  # type: ignore[no-untyped-def]
    return jsonify(await json_body())


@bp.post("/_test/echo_optional")
async def echo_optional():  # type: ignore[no-untyped-def]
    return jsonify(await json_body(allow_empty=True))


@bp.route("/_test/count", methods=["GET", "POST", "PUT", "DELETE"])
async def count():  # type: ignore[no-untyped-def]
    calls["count"] += 1
    return jsonify({})


@bp.get("/_test/boom")
async def boom():  # type: ignore[no-untyped-def]
    raise RuntimeError("secret detail 8d1f")


@bp.get("/_test/limited")
async def limited():  # type: ignore[no-untyped-def]
    raise MatrixError(Errcode.LIMIT_EXCEEDED, "Too many requests", retry_after_ms=1500)


@bp.get("/_test/segment/<value>")
async def segment(value: str):  # type: ignore[no-untyped-def]
    return {"value": value}


def add_test_routes(app: Quart, listener: Listener) -> None:
    app.register_blueprint(bp)


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    s = await launch(
        tmp_path_factory.mktemp("errors"),
        {"limits.max_request_bytes": LIMIT},
        configure_app=add_test_routes,
    )
    yield s
    await s.stop()


def assert_matrix_error(resp: httpx.Response, status: int, errcode: str) -> dict[str, object]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert body["errcode"] == errcode
    assert isinstance(body["error"], str) and body["error"]
    assert_cors(resp)
    return body


@pytest.mark.parametrize(
    "path", ["/_matrix/client/v3/nonexistent", "/_matrix/federation/v1/nope", "/nope", "/"]
)
async def test_unknown_path_is_404_unrecognized(client: httpx.AsyncClient, path: str) -> None:
    assert_matrix_error(await client.get(path), 404, "M_UNRECOGNIZED")


async def test_unknown_path_any_method(client: httpx.AsyncClient) -> None:
    resp = await client.put("/_matrix/client/v3/nonexistent", json={})
    assert_matrix_error(resp, 404, "M_UNRECOGNIZED")


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
async def test_wrong_method_is_405_unrecognized(client: httpx.AsyncClient, method: str) -> None:
    resp = await client.request(method, "/_matrix/client/versions")
    assert_matrix_error(resp, 405, "M_UNRECOGNIZED")
    assert "GET" in resp.headers["allow"]


async def test_json_body_roundtrip(srv: RunningServer) -> None:
    resp = await srv.client.post("/_test/echo", json={"a": [1, "é"]})
    assert resp.status_code == 200
    assert resp.json() == {"a": [1, "é"]}


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b"not json", b"{'a': 1}", b'{"a": NaN}', b'{"a": Infinity}', b'"\xff"'],
    ids=["empty", "truncated", "text", "single-quotes", "nan", "infinity", "not-utf8"],
)
async def test_invalid_json_is_400_not_json(srv: RunningServer, raw: bytes) -> None:
    resp = await srv.client.post("/_test/echo", content=raw)
    assert_matrix_error(resp, 400, "M_NOT_JSON")


@pytest.mark.parametrize("raw", [b"[]", b"1", b'"a"', b"null"])
async def test_json_not_object_is_400_bad_json(srv: RunningServer, raw: bytes) -> None:
    assert_matrix_error(await srv.client.post("/_test/echo", content=raw), 400, "M_BAD_JSON")


async def test_optional_body(srv: RunningServer) -> None:
    assert (await srv.client.post("/_test/echo_optional", content=b"")).json() == {}
    assert (await srv.client.post("/_test/echo_optional", json={"x": 1})).json() == {"x": 1}
    resp = await srv.client.post("/_test/echo_optional", content=b"nope")
    assert_matrix_error(resp, 400, "M_NOT_JSON")


async def test_body_at_limit_is_accepted(srv: RunningServer) -> None:
    raw = b'{"k": "' + b"x" * (LIMIT - 9) + b'"}'
    assert len(raw) == LIMIT
    resp = await srv.client.post("/_test/echo", content=raw)
    assert resp.status_code == 200


async def test_too_large_with_content_length(srv: RunningServer) -> None:
    raw = b'{"k": "' + b"x" * LIMIT + b'"}'
    resp = await srv.client.post("/_test/echo", content=raw)
    assert resp.request.headers["content-length"] == str(len(raw))
    assert_matrix_error(resp, 413, "M_TOO_LARGE")


async def _chunks(total: int, size: int = 16) -> AsyncIterator[bytes]:
    body = b'{"k": "' + b"x" * (total - 9) + b'"}'
    for i in range(0, len(body), size):
        yield body[i : i + size]


async def test_too_large_chunked(srv: RunningServer) -> None:
    resp = await srv.client.post("/_test/echo", content=_chunks(LIMIT * 3))
    assert resp.request.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in resp.request.headers
    assert_matrix_error(resp, 413, "M_TOO_LARGE")


async def test_small_chunked_body_is_accepted(srv: RunningServer) -> None:
    resp = await srv.client.post("/_test/echo", content=_chunks(LIMIT // 2))
    assert resp.request.headers["transfer-encoding"] == "chunked"
    assert resp.status_code == 200
    assert resp.json()["k"] == "x" * (LIMIT // 2 - 9)


async def test_declared_oversize_refused_before_handler(srv: RunningServer) -> None:
    before = calls["count"]
    resp = await srv.client.post("/_test/count", content=b"x" * (LIMIT + 1))
    assert_matrix_error(resp, 413, "M_TOO_LARGE")
    assert calls["count"] == before
    assert (await srv.client.post("/_test/count", content=b"x")).status_code == 200
    assert calls["count"] == before + 1


async def test_unexpected_exception_is_500_without_traceback(
    srv: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="dendrite_lite.api.errors"):
        resp = await srv.client.get("/_test/boom")
    body = assert_matrix_error(resp, 500, "M_UNKNOWN")
    assert "secret" not in resp.text and "Traceback" not in resp.text
    assert body["error"] == "Internal server error"
    logged = [r for r in caplog.records if r.name == "dendrite_lite.api.errors"]
    assert len(logged) == 1
    assert "/_test/boom" in logged[0].getMessage()
    assert logged[0].exc_info is not None
    assert "secret detail 8d1f" in caplog.text
    assert "Traceback" in caplog.text and "in boom" in caplog.text


async def test_matrix_error_status_and_extra_fields(srv: RunningServer) -> None:
    resp = await srv.client.get("/_test/limited")
    body = assert_matrix_error(resp, 429, "M_LIMIT_EXCEEDED")
    assert body == {
        "errcode": "M_LIMIT_EXCEEDED",
        "error": "Too many requests",
        "retry_after_ms": 1500,
    }


@pytest.mark.parametrize(
    "path",
    [
        "/_matrix/client/versions",
        "/_matrix/client/v3/rooms/!r:x/send/m.room.message/1",
        "/_matrix/federation/v1/version",
        "/.well-known/matrix/client",
    ],
)
async def test_options_preflight(client: httpx.AsyncClient, path: str) -> None:
    resp = await client.options(
        path,
        headers={
            "Origin": "https://app.element.io",
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert resp.status_code == 204
    assert resp.content == b""
    assert_cors(resp)


async def test_options_runs_no_endpoint_logic(srv: RunningServer) -> None:
    before = calls["count"]
    resp = await srv.client.options("/_test/count")
    assert resp.status_code == 204
    assert_cors(resp)
    assert calls["count"] == before


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_big_refused_body_still_gets_413(srv: RunningServer, chunked: bool) -> None:
    # Big enough to overflow the socket buffers: without draining the server would close with
    # unread data and the client would see a connection reset instead of the error.
    size = 2 * 1024 * 1024
    content = _chunks(size, 64 * 1024) if chunked else b"x" * size
    resp = await srv.client.post("/_test/echo", content=content)
    assert_matrix_error(resp, 413, "M_TOO_LARGE")
    # The connection (or a new one) still serves the next request.
    assert (await srv.client.post("/_test/echo", json={})).status_code == 200


async def test_encoded_slash_stays_inside_one_path_variable(srv: RunningServer) -> None:
    # Room version 3 event ids can contain "/", which clients send as %2F.
    resp = await srv.client.get("/_test/segment/%24a%2Fb%3Ac")
    assert resp.status_code == 200
    assert resp.json() == {"value": "$a/b:c"}


async def test_head_answers_like_get_without_a_body(srv: RunningServer) -> None:
    resp = await srv.client.head("/_matrix/client/versions")
    assert resp.status_code == 200 and resp.content == b""
    assert int(resp.headers["content-length"]) > 0
