"""Request/response primitives (dendrite_lite/api/http.py) driven through plain ASGI messages."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dendrite_lite.api.http import ClientDisconnected, Headers, QueryArgs, Request, jsonify
from dendrite_lite.errors import MatrixError


def _request(chunks: list[bytes], limit: int | None, headers: list[tuple[bytes, bytes]] | None = None) -> Request:
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)
    ]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    scope = {"method": "PUT", "path": "/x", "headers": headers or [], "query_string": b""}
    return Request(scope, receive, limit)


def test_headers_are_case_insensitive_and_repeated_ones_join() -> None:
    h = Headers([(b"authorization", b"Bearer t"), (b"x-a", b"1"), (b"x-a", b"2")])
    assert h.get("Authorization") == "Bearer t" and h["AUTHORIZATION"] == "Bearer t"
    assert h.get("X-A") == "1, 2" and "x-a" in h and h.get("missing") is None


def test_query_args_keep_every_value_in_order() -> None:
    q = QueryArgs(b"via=a.org&server_name=b.org&via=c.org&empty=&sp=a%20b")
    assert q.getlist("via") == ["a.org", "c.org"]
    assert q.get("via") == "a.org" and q.get("empty") == "" and q.get("sp") == "a b"
    assert q.get("none", "d") == "d" and "server_name" in q


async def test_chunked_body_is_joined() -> None:
    assert await _request([b'{"a":', b"1}"], 100).get_json() == {"a": 1}


async def test_body_over_the_limit_is_drained_then_413() -> None:
    req = _request([b"x" * 60, b"x" * 60, b"x" * 60], 100)
    with pytest.raises(MatrixError) as e:
        await req.get_data()
    assert (e.value.status, e.value.errcode) == (413, "M_TOO_LARGE")


async def test_declared_length_over_the_limit_is_413_before_reading() -> None:
    req = _request([b"x" * 10], 5, [(b"content-length", b"500")])
    with pytest.raises(MatrixError) as e:
        await req.refuse_declared_oversize()
    assert e.value.status == 413


async def test_disconnect_while_reading() -> None:
    messages = [{"type": "http.request", "body": b"x", "more_body": True}, {"type": "http.disconnect"}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    req = Request({"method": "PUT", "path": "/", "headers": [], "query_string": b""}, receive, None)
    with pytest.raises(ClientDisconnected):
        await req.get_data()


def test_jsonify_handles_what_orjson_refuses() -> None:
    big = 2**70  # a client may put this in event content; JSON allows it
    response = jsonify({"n": big, 1: "int key"})
    assert json.loads(response.body) == {"n": big, "1": "int key"}
    assert response.headers["Content-Type"] == "application/json"
