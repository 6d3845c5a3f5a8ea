"""Canonical JSON and unpadded Base64: every example of appendices.md §Canonical JSON and
§Unpadded Base64, byte for byte, plus the strict (v6+) number rules."""

from __future__ import annotations

import pytest

from dendrite_lite.crypto.canonical import (
    CanonicalJSONError,
    check_strict_canonical,
    decode_base64,
    encode_base64,
    encode_canonical_json,
    parse_json,
)

# (input JSON text as written in the appendix, expected canonical JSON)
CANONICAL_VECTORS = [
    ("{}", "{}"),
    ('{\n    "one": 1,\n    "two": "Two"\n}', '{"one":1,"two":"Two"}'),
    ('{\n    "b": "2",\n    "a": "1"\n}', '{"a":"1","b":"2"}'),
    ('{"b":"2","a":"1"}', '{"a":"1","b":"2"}'),
    (
        """{
    "auth": {
        "success": true,
        "mxid": "@john.doe:example.com",
        "profile": {
            "display_name": "John Doe",
            "three_pids": [
                {
                    "medium": "email",
                    "address": "john.doe@example.org"
                },
                {
                    "medium": "msisdn",
                    "address": "123456789"
                }
            ]
        }
    }
}""",
        '{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe",'
        '"three_pids":[{"address":"john.doe@example.org","medium":"email"},'
        '{"address":"123456789","medium":"msisdn"}]},"success":true}}',
    ),
    ('{\n    "a": "日本語"\n}', '{"a":"日本語"}'),
    ('{\n    "本": 2,\n    "日": 1\n}', '{"日":1,"本":2}'),
    ('{\n    "a": "\\u65E5"\n}', '{"a":"日"}'),
    ('{\n    "a": null\n}', '{"a":null}'),
    ('{\n    "a": -0,\n    "b": 1e10\n}', '{"a":0,"b":10000000000}'),
]


@pytest.mark.parametrize(("given", "expected"), CANONICAL_VECTORS)
def test_appendix_canonical_json_vectors(given: str, expected: str) -> None:
    assert encode_canonical_json(parse_json(given)) == expected.encode("utf-8")


def test_canonical_json_escapes_only_what_the_grammar_requires() -> None:
    value = {"s": 'a"b\\c\n\t\x01\x1f/é\U0001f600'}
    assert encode_canonical_json(value) == '{"s":"a\\"b\\\\c\\n\\t\\u0001\\u001f/é\U0001f600"}'.encode()


def test_canonical_json_rejects_nan_and_lone_surrogates() -> None:
    with pytest.raises(CanonicalJSONError):
        encode_canonical_json({"a": float("nan")})
    with pytest.raises(CanonicalJSONError):
        encode_canonical_json({"a": "\ud800"})


def test_parse_json_integral_numbers_become_ints() -> None:
    assert parse_json('{"a": 2.0, "b": -1E2, "c": 1.5}') == {"a": 2, "b": -100, "c": 1.5}
    assert type(parse_json("2.0")) is int
    with pytest.raises(CanonicalJSONError):
        parse_json('{"a": NaN}')
    with pytest.raises(CanonicalJSONError):
        parse_json('{"a": Infinity}')
    with pytest.raises(CanonicalJSONError):
        parse_json("{not json")


@pytest.mark.parametrize("value", [2**53 - 1, -(2**53) + 1, 0, True, None, "x", [1, {"a": []}]])
def test_strict_accepts_in_range_integers(value: object) -> None:
    check_strict_canonical({"v": value})


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ({"a": {"b": [0, 2**53]}}, "/a/b/1"),
        ({"a": -(2**53)}, "/a"),
        ({"x": 1.5}, "/x"),
        ({"x": [0.0]}, "/x/0"),
    ],
)
def test_strict_rejects_big_integers_and_floats_naming_the_path(value: object, where: str) -> None:
    with pytest.raises(CanonicalJSONError, match=f"at {where}$"):
        check_strict_canonical(value)


def test_strict_check_survives_deep_nesting() -> None:
    deep: object = 1.5
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(CanonicalJSONError, match="float"):
        check_strict_canonical(deep)


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [(b"", ""), (b"f", "Zg"), (b"fo", "Zm8"), (b"foo", "Zm9v"), (b"foob", "Zm9vYg"),
     (b"fooba", "Zm9vYmE"), (b"foobar", "Zm9vYmFy")],
)
def test_appendix_unpadded_base64_vectors(raw: bytes, encoded: str) -> None:
    assert encode_base64(raw) == encoded
    assert decode_base64(encoded) == raw
    # Decoders SHOULD accept padded input too.
    assert decode_base64(encoded + "=" * (-len(encoded) % 4)) == raw


def test_urlsafe_base64_uses_minus_and_underscore() -> None:
    raw = bytes([0xFB, 0xFF, 0xBF])
    assert encode_base64(raw) == "+/+/"
    assert encode_base64(raw, urlsafe=True) == "-_-_"
    assert decode_base64("-_-_") == raw


@pytest.mark.parametrize("bad", ["Z", "Zm9v!", "Zm 9v", 5])
def test_decode_base64_rejects_garbage(bad: object) -> None:
    with pytest.raises(ValueError):
        decode_base64(bad)  # type: ignore[arg-type]
