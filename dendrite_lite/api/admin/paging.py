"""Query parameters the Synapse-compatible admin lists share: `from` and `limit` (integers from
0 to SQLite's largest: 400 M_INVALID_PARAM otherwise), `order_by` (one of a list) and `dir`
(f or b)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from quart import request

from dendrite_lite.api.client.query_args import int_arg
from dendrite_lite.errors import Errcode, MatrixError

__all__ = ["MAX_SQL_INT", "backwards_arg", "non_negative_arg", "order_by_arg", "paged"]

# SQLite's largest integer: a bigger one cannot even be bound to a query.
MAX_SQL_INT = 2**63 - 1


def non_negative_arg(name: str, default: int | None = None) -> int:
    """An integer query parameter, 0 or more (400 M_MISSING_PARAM when absent without a default)."""
    value = int_arg(name, default)
    if not 0 <= value <= MAX_SQL_INT:
        raise MatrixError(
            Errcode.INVALID_PARAM,
            f"Query parameter {name} must be from 0 to {MAX_SQL_INT}",
        )
    return value


def backwards_arg(default: bool = False) -> bool:
    """Whether `dir` is b (backwards); f is forwards."""
    direction = request.args.get("dir")
    if direction is None:
        return default
    if direction not in ("f", "b"):
        raise MatrixError(
            Errcode.INVALID_PARAM, "Query parameter dir must be 'f' or 'b'"
        )
    return direction == "b"


def order_by_arg(allowed: Collection[str], default: str) -> str:
    order_by = request.args.get("order_by", default)
    if order_by not in allowed:
        raise MatrixError(
            Errcode.INVALID_PARAM,
            f"Query parameter order_by must be one of: {', '.join(allowed)}",
        )
    return order_by


def paged(
    body: dict[str, Any],
    offset: int,
    shown: int,
    total: int,
    *,
    string_token: bool = False,
) -> dict[str, Any]:
    """`body` with Synapse's `next_token` (the next page's `from`) when more follow. Some of
    Synapse's lists give it as a string (`string_token`), others as an integer."""
    if offset + shown < total:
        body["next_token"] = str(offset + shown) if string_token else offset + shown
    return body
