"""Query-string parameters shared by the client API handlers, with the spec's errors: a missing
required one is 400 M_MISSING_PARAM, one that does not parse 400 M_INVALID_PARAM."""

from __future__ import annotations

from quart import request

from dendrite_lite.errors import Errcode, MatrixError

__all__ = ["bool_arg", "int_arg", "str_arg"]


def str_arg(name: str) -> str:
    """A required string parameter."""
    value = request.args.get(name)
    if value is None:
        raise MatrixError(Errcode.MISSING_PARAM, f"Missing {name} parameter")
    return value


def int_arg(name: str, default: int | None = None) -> int:
    value = request.args.get(name)
    if value is None:
        if default is None:
            raise MatrixError(Errcode.MISSING_PARAM, f"Missing {name} parameter")
        return default
    try:
        return int(value)
    except ValueError:
        raise MatrixError(Errcode.INVALID_PARAM, f"{name} must be an integer") from None


def bool_arg(*names: str, default: bool = False) -> bool:
    """The first of `names` present ("true" or "false"; unstable prefixes go after the stable
    name)."""
    for name in names:
        value = request.args.get(name)
        if value is None:
            continue
        if value not in ("true", "false"):
            raise MatrixError(Errcode.INVALID_PARAM, f"{name} must be 'true' or 'false'")
        return value == "true"
    return default
