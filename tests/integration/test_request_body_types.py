"""Every JSON request body field we parse is type-checked before use (issue 11).

For each client-server operation in the spec whose JSON request body is an object with declared
properties, hypothesis sends bodies in which one property (top-level, or one level down: a nested
property, an array item or a map value) holds a value of a JSON type the schema does not allow:
null, a list, a number, a string, an object or a boolean. The rest of the body is empty, the
spec's own example or a body known to be valid here, so checks that come after the first field
are reached too. Whatever the server thinks of the value, it must answer with a Matrix error, not
crash: never a 5xx, and every 4xx is `{errcode, error}` (or a UIA 401 with `flows`).

Operations we do not route (404/405 M_UNRECOGNIZED to an empty body) are skipped; the list is
derived from the spec, so an endpoint added later is covered as soon as it is routed.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import SERVER_NAME, RunningServer
from tests.integration.account_helpers import running_server
from tests.integration.room_helpers import User, new_user
from tests.spec_paths import CS_API_DIR

# ---------------------------------------------------------------------------------------------
# The operations, from the spec's YAML


@dataclass(frozen=True)
class Field:
    """A property of a request body: the JSON types it allows (None: any) and what it holds."""

    types: frozenset[str] | None
    # name -> Field of an object's declared properties; "*" -> an array's items or a map's values
    children: dict[str, Field]


@dataclass(frozen=True)
class Operation:
    file: str
    method: str
    path: str  # full path with {params}, e.g. /_matrix/client/v3/rooms/{roomId}/invite
    fields: dict[str, Field]
    example: dict[str, Any] | None

    @property
    def id(self) -> str:
        return f"{self.method} {self.path.removeprefix('/_matrix/client')} [{self.file}]"


def _load(path: Path) -> Any:
    with open(path) as f:
        return yaml.safe_load(f)


_docs: dict[Path, Any] = {}


def _deref(schema: Any, file: Path) -> tuple[dict[str, Any], Path]:
    """Follow `$ref`s, each relative to the file that holds it."""
    while isinstance(schema, dict) and "$ref" in schema:
        target, _, pointer = schema["$ref"].partition("#")
        if target:
            file = (file.parent / target).resolve()
        doc = _docs.setdefault(file, _load(file))
        schema = doc
        for token in filter(None, pointer.split("/")):
            schema = schema[token.replace("~1", "/").replace("~0", "~")]
    return (schema if isinstance(schema, dict) else {}), file


def _properties(schema: dict[str, Any], file: Path) -> dict[str, tuple[Any, Path]]:
    """Declared properties, `allOf` parts merged, each with the file its `$ref`s are relative to."""
    props: dict[str, tuple[Any, Path]] = {}
    for part in schema.get("allOf") or ():
        props.update(_properties(*_deref(part, file)))
    props.update({name: (prop, file) for name, prop in (schema.get("properties") or {}).items()})
    return props


def _object_type(schema: dict[str, Any], file: Path) -> str | None:
    if schema.get("type") or "allOf" not in schema:
        return schema.get("type")
    return next(filter(None, (_deref(p, file)[0].get("type") for p in schema["allOf"])), None)


def _types(schema: dict[str, Any], file: Path) -> frozenset[str] | None:
    declared = _object_type(schema, file)
    if declared is not None:
        return frozenset([declared] if isinstance(declared, str) else declared)
    alternatives = schema.get("oneOf") or schema.get("anyOf")
    if alternatives:
        union: set[str] = set()
        for alt in alternatives:
            sub = _types(*_deref(alt, file))
            if sub is None:
                return None
            union |= sub
        return frozenset(union)
    return None


def _field(schema: Any, file: Path, depth: int) -> Field:
    schema, file = _deref(schema, file)
    children: dict[str, Field] = {}
    if depth > 0:
        for name, (prop, prop_file) in _properties(schema, file).items():
            children[name] = _field(prop, prop_file, depth - 1)
        patterns = list((schema.get("patternProperties") or {}).values())
        inner = schema.get("items") or schema.get("additionalProperties") or next(iter(patterns), None)
        if isinstance(inner, dict):
            children["*"] = _field(inner, file, depth - 1)
    return Field(_types(schema, file), children)


def _operations() -> list[Operation]:
    ops = []
    for file in sorted(CS_API_DIR.glob("*.yaml")):
        doc = _docs.setdefault(file.resolve(), _load(file))
        base = doc["servers"][0]["variables"]["basePath"]["default"]
        for path, methods in (doc.get("paths") or {}).items():
            for method, op in methods.items():
                content = (op.get("requestBody") or {}).get("content", {}).get("application/json")
                if not content:
                    continue
                schema, schema_file = _deref(content["schema"], file.resolve())
                props = _properties(schema, schema_file)
                if _object_type(schema, schema_file) != "object" or not props:
                    continue
                fields = {
                    name: _field(prop, prop_file, depth=1) for name, (prop, prop_file) in props.items()
                }
                example = schema.get("example", content.get("example"))
                ops.append(Operation(
                    file.name, method.upper(), base + path, fields,
                    example if isinstance(example, dict) else None,
                ))
    return ops


OPERATIONS = _operations()

# ---------------------------------------------------------------------------------------------
# Wrong-typed values

_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**53), 2**53), st.text(max_size=8),
    st.floats(allow_nan=False, allow_infinity=False, width=32).filter(lambda f: not f.is_integer()),
)
_WRONG: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(),
    "boolean": st.booleans(),
    "integer": st.integers(-(2**53), 2**53),
    "number": st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer()),
    "string": st.text(max_size=12),
    "array": st.lists(_leaf, max_size=3),
    "object": st.dictionaries(st.text(max_size=6), _leaf, max_size=3),
}


def _allowed(declared: frozenset[str]) -> set[str]:
    allowed = set(declared)
    if "number" in allowed:
        allowed.add("integer")  # every JSON integer is a number
    return allowed


def wrong_value(field: Field) -> st.SearchStrategy[Any] | None:
    """A value of a JSON type `field` does not allow; None when it allows anything."""
    if field.types is None:
        return None
    kinds = sorted(set(_WRONG) - _allowed(field.types))
    return st.sampled_from(kinds).flatmap(lambda kind: _WRONG[kind]) if kinds else None


def mutations(fields: dict[str, Field]) -> list[tuple[str, str | None, st.SearchStrategy[Any]]]:
    """(top-level name, nested name or None, wrong value) for every field that has a wrong type."""
    found = []
    for name, field in fields.items():
        wrong = wrong_value(field)
        if wrong is not None:
            found.append((name, None, wrong))
        if field.types is None or field.types & {"object", "array"}:
            for child_name, child in field.children.items():
                wrong = wrong_value(child)
                if wrong is not None:
                    found.append((name, child_name, wrong))
    return found


def apply(base: dict[str, Any], field: Field, name: str, child: str | None, value: Any) -> dict[str, Any]:
    body = json.loads(json.dumps(base))  # a deep copy: bases are shared between examples
    if child is None:
        body[name] = value
    elif child == "*":
        types = field.types or frozenset()
        if "array" in types or ("object" not in types and isinstance(body.get(name), list)):
            body[name] = [value]
        else:
            body[name] = {"@other:example.org": value}
    else:
        parent = body.get(name)
        body[name] = {**(parent if isinstance(parent, dict) else {}), child: value}
    return body


# ---------------------------------------------------------------------------------------------
# The server, the user and the values of path parameters


@dataclass
class Setup:
    srv: RunningServer
    user: User
    other: User


@pytest.fixture(scope="module")
async def setup(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Setup]:
    async with running_server(tmp_path_factory.mktemp("body-types")) as srv:
        user = await new_user(srv, "prop")
        other = await new_user(srv, "other")
        yield Setup(srv, user, other)


_txn = itertools.count()


@dataclass
class Target:
    """Path parameters for one operation, and bodies known to be valid for it."""

    params: dict[str, Callable[[], str]]
    valid: list[dict[str, Any]]
    routed: bool = True

    def url(self, op: Operation) -> str:
        url = op.path
        for name, value in self.params.items():
            url = url.replace("{" + name + "}", quote(value(), safe=""))
        return url


async def target_for(op: Operation, s: Setup) -> Target:
    user = s.user
    room_id = await user.create_room(preset="public_chat")  # a fresh room: one op cannot spoil the next
    await s.other.call("POST", f"/join/{room_id}")
    event_id = await user.send(room_id)
    fixed = {
        "userId": user.user_id, "roomId": room_id, "roomIdOrAlias": room_id, "eventId": event_id,
        "deviceId": user.device_id, "receiptType": "m.read", "stateKey": "", "type": "org.example.data",
        "eventType": "org.example.state" if "/state/" in op.path else "m.room.message",
        "kind": "override", "ruleId": "org.example.rule" if op.path.endswith("{ruleId}") else ".m.rule.master",
        "roomAlias": f"#prop{next(_txn)}:{SERVER_NAME}", "tag": "u.work", "version": "1",
        "sessionId": "session", "keyName": "displayname", "networkId": "net", "appserviceId": "as",
    }
    params: dict[str, Callable[[], str]] = {k: (lambda v=v: v) for k, v in fixed.items()}
    params["txnId"] = lambda: f"txn{next(_txn)}"  # a new transaction each time: no cached answer
    valid: list[dict[str, Any]] = [{}]
    if op.example is not None:
        valid.append(op.example)
    known = {
        "/invite": {"user_id": s.other.user_id, "reason": "r"},
        "/kick": {"user_id": s.other.user_id, "reason": "r"},
        "/ban": {"user_id": s.other.user_id, "reason": "r"},
        "/unban": {"user_id": s.other.user_id, "reason": "r"},
        "/login": {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user.user_id},
                   "password": "wrong", "device_id": "D"},
        "/register": {"username": f"reg{next(_txn)}", "password": "pw", "auth": {"type": "m.login.dummy"}},
        "/typing/{userId}": {"typing": True, "timeout": 1000},
        "/presence/{userId}/status": {"presence": "online", "status_msg": "hi"},
        "/read_markers": {"m.fully_read": event_id, "m.read": event_id},
        "/upgrade": {"new_version": "11"},
        "/directory/room/{roomAlias}": {"room_id": room_id},
        "/directory/list/room/{roomId}": {"visibility": "public"},
        "/user_directory/search": {"search_term": "prop", "limit": 3},
        "/publicRooms": {"limit": 3, "filter": {"generic_search_term": "x"}},
        "/keys/query": {"device_keys": {user.user_id: []}, "timeout": 10},
        "/keys/claim": {"one_time_keys": {user.user_id: {user.device_id: "signed_curve25519"}}},
        "/sendToDevice/{eventType}/{txnId}": {"messages": {user.user_id: {"*": {"x": 1}}}},
    }
    for suffix, body in known.items():
        if op.path.endswith(suffix):
            valid.append(body)
    return Target(params, valid)


def assert_matrix_answer(op: Operation, body: dict[str, Any], resp: httpx.Response) -> None:
    what = f"{op.method} {op.path} with {json.dumps(body)}"
    assert resp.status_code < 500, f"{what}: {resp.status_code} {resp.text}"
    if resp.status_code >= 400:
        try:
            answer = resp.json()
        except ValueError:
            raise AssertionError(f"{what}: {resp.status_code} not JSON: {resp.text!r}") from None
        if resp.status_code == 401 and "flows" in answer:
            return  # a user-interactive auth challenge: errcode only after a failed stage
        assert isinstance(answer.get("errcode"), str), f"{what}: {resp.status_code} {resp.text}"
        assert isinstance(answer.get("error"), str), f"{what}: {resp.status_code} {resp.text}"


# ---------------------------------------------------------------------------------------------
# The test


_targets: dict[str, Target] = {}  # op.id -> its target, made at the op's first example


@pytest.mark.parametrize("op", [op for op in OPERATIONS if mutations(op.fields)], ids=lambda op: op.id)
@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
async def test_wrong_typed_fields_get_a_matrix_error(
    setup: Setup, op: Operation, data: st.DataObject
) -> None:
    target = _targets.get(op.id)
    if target is None:
        target = _targets[op.id] = await target_for(op, setup)
        probe = await setup.user.call(op.method, target.url(op), {}, expect=None)
        if probe.status_code in (404, 405) and probe.json().get("errcode") == "M_UNRECOGNIZED":
            target.routed = False
        else:
            assert_matrix_answer(op, {}, probe)
    if not target.routed:
        pytest.skip("not routed")
    name, child, wrong = data.draw(st.sampled_from(mutations(op.fields)), label="field")
    base = data.draw(st.sampled_from(target.valid), label="base")
    body = apply(base, op.fields[name], name, child, data.draw(wrong, label="value"))
    resp = await setup.user.call(op.method, target.url(op), body, expect=None)
    assert_matrix_answer(op, body, resp)


# ---------------------------------------------------------------------------------------------
# Regressions: what the property test found (each was a 500, or a 400 that did not name the field)


def assert_bad_json(resp: httpx.Response, field: str) -> None:
    assert resp.status_code == 400, resp.text
    assert resp.json()["errcode"] == "M_BAD_JSON", resp.text
    assert field in resp.json()["error"], resp.text


@pytest.mark.parametrize("preset", [[None, None], {"a": 1}, 1, True])
async def test_create_room_with_a_preset_of_the_wrong_type(setup: Setup, preset: Any) -> None:
    # Was 500: TypeError: unhashable type: 'list' (the preset was looked up in a dict).
    resp = await setup.user.call("POST", "/createRoom", {"preset": preset}, expect=None)
    assert_bad_json(resp, "preset")


async def test_create_room_other_fields_of_the_wrong_type(setup: Setup) -> None:
    # Were 400 M_UNSUPPORTED_ROOM_VERSION naming the value, and a 200 ignoring invite_3pid.
    resp = await setup.user.call("POST", "/createRoom", {"room_version": ["10"]}, expect=None)
    assert_bad_json(resp, "room_version")
    resp = await setup.user.call("POST", "/createRoom", {"invite_3pid": 5}, expect=None)
    assert_bad_json(resp, "invite_3pid")


@pytest.mark.parametrize("stage", [[], {"type": "m.login.password"}])
@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/register"), ("POST", "/account/password"), ("POST", "/account/deactivate"),
     ("DELETE", "/devices/{device}"), ("POST", "/delete_devices")],
)
async def test_uia_with_an_auth_type_of_the_wrong_type(
    setup: Setup, method: str, path: str, stage: Any
) -> None:
    # Was 500: TypeError: unhashable type (the stage was looked up in the set of next stages).
    url = path.format(device=setup.user.device_id)
    body = {"auth": {"type": stage}, "devices": [], "new_password": "x" * 12}
    resp = await setup.user.call(method, url, body, expect=None)
    assert_bad_json(resp, "auth.type")
    resp = await setup.user.call(method, url, {**body, "auth": {"session": 7}}, expect=None)
    assert_bad_json(resp, "auth.session")


@pytest.mark.parametrize("action", ["invite", "kick", "ban", "unban"])
async def test_membership_user_id_of_the_wrong_type(setup: Setup, action: str) -> None:
    # Was 400 M_INVALID_PARAM "[] is not a valid user id": the field went unnamed.
    room_id = await setup.user.create_room()
    resp = await setup.user.call("POST", f"/rooms/{room_id}/{action}", {"user_id": []}, expect=None)
    assert_bad_json(resp, "user_id")
