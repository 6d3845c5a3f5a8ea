"""Typed access to the fields of a JSON request body.

A body field is whatever JSON the client sent: reading it as the type the spec declares without
checking turns `"preset": [null, null]` into a TypeError deep in a service (a 500) instead of the
400 the client needs. These helpers check the JSON type where the body is parsed (API handlers and
the services' parse_* functions) and raise 400 M_BAD_JSON naming the field.

Imports only errors.py, so every layer that parses bodies can use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from dendrite_lite.errors import Errcode, MatrixError

__all__ = ["JsonType", "is_json_type", "optional_field", "required_field"]

JsonType = Literal["string", "boolean", "integer", "number", "object", "array"]

_ARTICLE: dict[str, str] = {
    "string": "a string",
    "boolean": "a boolean",
    "integer": "an integer",
    "number": "a number",
    "object": "an object",
    "array": "a list",
}


def is_json_type(value: object, kind: JsonType) -> bool:
    """Whether `value` (as json.loads returns it) is of JSON type `kind`."""
    # bool is a subclass of int in Python, but true is not a JSON number.
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "object":
        return isinstance(value, dict)
    return isinstance(value, list)


def optional_field(
    body: Mapping[str, Any], key: str, kind: JsonType, *, name: str | None = None
) -> Any:
    """body[key] if it is of JSON type `kind`; None if absent or null; else 400 M_BAD_JSON.

    null reads as absent: clients (and Synapse) use it for "not set" on optional fields.
    `name` is how the error names the field when `body` is nested (e.g. "auth.type").
    """
    value = body.get(key)
    if value is not None and not is_json_type(value, kind):
        raise MatrixError(Errcode.BAD_JSON, f"{name or key} must be {_ARTICLE[kind]}")
    return value


def required_field(
    body: Mapping[str, Any], key: str, kind: JsonType, *, name: str | None = None
) -> Any:
    """body[key], which must be present (400 M_MISSING_PARAM) and of JSON type `kind`."""
    value = optional_field(body, key, kind, name=name)
    if value is None:
        raise MatrixError(Errcode.MISSING_PARAM, f"{name or key} is required")
    return value
