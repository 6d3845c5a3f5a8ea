"""Validate response bodies against the spec's OpenAPI (3.1) and JSON schemas.

    assert_matches_operation("client-server/versions.yaml", "/versions", "get", 200, body)
    assert_matches_schema("server-server/definitions/keys.yaml", body)

File names are relative to <spec>/data/api/ (absolute paths work too); `path` is the OpenAPI path
as written in the file, i.e. without the basePath (`/versions`, not `/_matrix/client/versions`).
Every `$ref` is resolved relative to the file that contains it, as the spec's tooling does.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.spec_paths import SPEC_DIR

__all__ = ["assert_matches_operation", "assert_matches_schema", "operation_schema"]

API_DIR = SPEC_DIR / "data" / "api"


def _file(name: str | Path) -> Path:
    path = Path(name)
    return path if path.is_absolute() else API_DIR / path


@cache
def _load_uri(uri: str) -> Resource[Any]:
    path = Path(uri.removeprefix("file://"))
    with open(path) as f:
        contents = yaml.safe_load(f)
    return DRAFT202012.create_resource(contents)


def _registry() -> Registry[Any]:
    return Registry(retrieve=_load_uri)  # type: ignore[call-arg]


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def operation_schema(yaml_file: str | Path, path: str, method: str, status: int) -> dict[str, Any]:
    """A `$ref` schema pointing at the operation's JSON response schema inside the file."""
    file = _file(yaml_file)
    doc = _load_uri(file.as_uri()).contents
    try:
        op = doc["paths"][path][method.lower()]
    except KeyError:
        raise AssertionError(f"{file.name} has no operation {method.upper()} {path}") from None
    response = op["responses"].get(str(status))
    if response is None or "application/json" not in response.get("content", {}):
        raise AssertionError(f"{file.name} {method.upper()} {path} has no JSON {status} response")
    pointer = "/".join(
        _escape(t)
        for t in ("paths", path, method.lower(), "responses", str(status), "content",
                  "application/json", "schema")
    )
    return {"$ref": f"{file.as_uri()}#/{pointer}"}


def _validate(schema: dict[str, Any], body: Any, what: str) -> None:
    validator = jsonschema.Draft202012Validator(schema, registry=_registry())
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors]
        raise AssertionError(f"body does not match {what}:\n" + "\n".join(lines))


def assert_matches_operation(
    yaml_file: str | Path, path: str, method: str, status: int, body: Any
) -> None:
    schema = operation_schema(yaml_file, path, method, status)
    _validate(schema, body, f"{yaml_file} {method.upper()} {path} {status}")


def assert_matches_schema(schema_file: str | Path, body: Any) -> None:
    """Validate against a standalone schema file (definitions/*.yaml, event schemas)."""
    file = _file(schema_file)
    if not file.exists():
        file = SPEC_DIR / "data" / schema_file
    _validate({"$ref": file.as_uri()}, body, str(schema_file))
