"""rooms.search_request: the FTS5 expression of a search term and the next_batch tokens."""

from __future__ import annotations

import pytest

from dendrite_lite.errors import MatrixError
from dendrite_lite.rooms.search_request import Page, decode_token, encode_token, fts_query


@pytest.mark.parametrize(("term", "expected"), [
    ("martians and men", '"martians"* AND "and"* AND "men"*'),
    ('"old farm" cow', '"old farm" AND "cow"*'),
    ('NEAR(a b) OR -x*', '"NEAR"* AND "a"* AND "b"* AND "OR"* AND "x"*'),
    ("héllo 世界", '"héllo"* AND "世界"*'),
    ("  ", None),
    ('"" ***', None),
])
def test_fts_query_quotes_every_word(term: str, expected: str | None) -> None:
    assert fts_query(term) == expected


@pytest.mark.parametrize("page", [
    Page(), Page(offset=30), Page(before=-5), Page(before=12, group=("sender", "@a:x")),
    Page(offset=2, group=("room_id", "!r:x")),
])
def test_tokens_round_trip(page: Page) -> None:
    assert decode_token(encode_token(page)) == page


# "!!": not base64; {"o":-1}; {"g":["type","x"]}: no such grouping; [1]: not an object.
@pytest.mark.parametrize("token", ["", "!!", "eyJvIjotMX0", "eyJnIjpbInR5cGUiLCJ4Il19", "WzFd"])
def test_bad_tokens_are_invalid_param(token: str) -> None:
    with pytest.raises(MatrixError) as e:
        decode_token(token)
    assert e.value.errcode == "M_INVALID_PARAM"
