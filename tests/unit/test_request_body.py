"""dendrite_lite.request_body: typed access to JSON body fields."""

from __future__ import annotations

from typing import Any

import pytest

from dendrite_lite.errors import MatrixError
from dendrite_lite.request_body import (
    JsonType,
    is_json_type,
    optional_field,
    required_field,
)

SAMPLES: dict[JsonType, Any] = {
    "string": "s", "boolean": True, "integer": 3, "number": 1.5, "object": {}, "array": [],
}


@pytest.mark.parametrize("kind", list(SAMPLES))
def test_each_json_type_matches_only_its_values(kind: JsonType) -> None:
    for sample_kind, value in SAMPLES.items():
        expected = sample_kind == kind or (kind == "number" and sample_kind == "integer")
        assert is_json_type(value, kind) is expected, (kind, value)


def test_a_boolean_is_not_a_number() -> None:
    # bool subclasses int in Python; JSON true is not 1.
    assert not is_json_type(True, "integer")
    assert not is_json_type(False, "number")


def test_optional_field_reads_null_and_absent_as_none() -> None:
    assert optional_field({}, "name", "string") is None
    assert optional_field({"name": None}, "name", "string") is None
    assert optional_field({"name": "x"}, "name", "string") == "x"


@pytest.mark.parametrize("value", [[None, None], {"a": 1}, 1, True])
def test_a_wrong_type_is_m_bad_json_naming_the_field(value: Any) -> None:
    with pytest.raises(MatrixError) as e:
        optional_field({"type": value}, "type", "string", name="auth.type")
    assert e.value.errcode == "M_BAD_JSON" and e.value.status == 400
    assert e.value.error == "auth.type must be a string"


def test_required_field() -> None:
    with pytest.raises(MatrixError) as e:
        required_field({"user_id": None}, "user_id", "string")
    assert e.value.errcode == "M_MISSING_PARAM" and "user_id" in e.value.error
    with pytest.raises(MatrixError) as e:
        required_field({"limit": 1.5}, "limit", "integer")
    assert e.value.errcode == "M_BAD_JSON" and e.value.error == "limit must be an integer"
    assert required_field({"limit": 2}, "limit", "integer") == 2
