"""Canonical JSON and unpadded Base64 (appendices §Canonical JSON, §Unpadded Base64).

Encoding uses the `canonicaljson` library, the same one Synapse uses, so hashes and signatures
over events from older room versions (which may hold floats or huge integers) come out
byte-identical to theirs. Room versions 6+ additionally require *strict* canonical JSON (integers
in [-(2**53)+1, (2**53)-1], no floats): `check_strict_canonical` enforces that.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any

import canonicaljson

__all__ = [
    "CANONICALJSON_MAX_INT",
    "CANONICALJSON_MIN_INT",
    "CanonicalJSONError",
    "encode_canonical_json",
    "check_strict_canonical",
    "parse_json",
    "encode_base64",
    "decode_base64",
]

CANONICALJSON_MAX_INT = 2**53 - 1
CANONICALJSON_MIN_INT = -CANONICALJSON_MAX_INT


class CanonicalJSONError(ValueError):
    """The value cannot be (strict) canonical JSON; the message names the offending path."""


def encode_canonical_json(value: Any) -> bytes:
    """Shortest UTF-8 JSON with sorted keys. Raises CanonicalJSONError for NaN/Infinity and
    values JSON cannot represent."""
    try:
        return canonicaljson.encode_canonical_json(value)
    except (ValueError, TypeError) as e:
        raise CanonicalJSONError(str(e)) from None


def check_strict_canonical(value: Any, path: str = "") -> None:
    """Raise CanonicalJSONError unless every number in `value` is an integer within the
    canonical JSON range (room versions 6+, fragments/v6-canonical-json.md)."""
    # An explicit stack instead of recursion: an attacker-supplied event can nest deeply.
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        v, p = stack.pop()
        if isinstance(v, bool) or v is None or isinstance(v, str):
            continue
        if isinstance(v, int):
            if not CANONICALJSON_MIN_INT <= v <= CANONICALJSON_MAX_INT:
                raise CanonicalJSONError(f"integer out of canonical JSON range at {p or '/'}")
        elif isinstance(v, float):
            raise CanonicalJSONError(f"float not allowed in canonical JSON at {p or '/'}")
        elif isinstance(v, dict):
            for k, item in v.items():
                if not isinstance(k, str):
                    raise CanonicalJSONError(f"non-string key at {p or '/'}")
                stack.append((item, f"{p}/{k}"))
        elif isinstance(v, (list, tuple)):
            stack.extend((item, f"{p}/{i}") for i, item in enumerate(v))
        else:
            raise CanonicalJSONError(f"{type(v).__name__} is not JSON at {p or '/'}")


_INT_PARSE_LIMIT = 2**64


def _parse_number(text: str) -> int | float:
    # JSON numbers written with an exponent or fraction that are nevertheless integers
    # (`1e10`, `2.0`) denote integers: the appendix's own test vector canonicalises
    # {"b": 1e10} to {"b":10000000000}. Only genuinely fractional numbers stay floats, which
    # strict room versions then reject.
    # decimal is imported here, not at the top: 0.3 MB of RSS for a path that only numbers
    # with a fraction or an exponent take, which Matrix events hardly ever carry.
    from decimal import Decimal, InvalidOperation

    try:
        d = Decimal(text)
    except InvalidOperation:  # pragma: no cover - json only hands us valid number text
        raise CanonicalJSONError(f"invalid number {text!r}") from None
    if abs(d) <= _INT_PARSE_LIMIT and d == d.to_integral_value():
        return int(d)
    f = float(text)
    if math.isinf(f):
        raise CanonicalJSONError(f"number {text!r} out of range")
    return f


def _reject_constant(name: str) -> Any:
    raise CanonicalJSONError(f"{name} is not valid JSON")


def parse_json(data: bytes | str) -> Any:
    """Parse JSON text the way Matrix means it: integral numbers become ints whatever their
    spelling, NaN/Infinity are rejected. Raises CanonicalJSONError (a ValueError) on bad input."""
    try:
        return json.loads(data, parse_float=_parse_number, parse_constant=_reject_constant)
    except CanonicalJSONError:
        raise
    except (ValueError, RecursionError) as e:
        raise CanonicalJSONError(f"invalid JSON: {e}") from None


def encode_base64(data: bytes, *, urlsafe: bool = False) -> str:
    """Unpadded Base64, standard or (for v4+ event ids and v12 room ids) URL-safe alphabet."""
    enc = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    return enc(data).rstrip(b"=").decode("ascii")


def decode_base64(text: str) -> bytes:
    """Decode Base64 with or without padding, standard or URL-safe alphabet (the appendix says
    implementations SHOULD accept both padded and unpadded). Raises ValueError on bad input."""
    if not isinstance(text, str):
        raise ValueError("base64 value is not a string")
    s = text.rstrip("=")
    if "-" in s or "_" in s:
        s = s.replace("-", "+").replace("_", "/")
    if len(s) % 4 == 1:
        raise ValueError("invalid base64 length")
    try:
        return base64.b64decode(s + "=" * (-len(s) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("invalid base64") from None
