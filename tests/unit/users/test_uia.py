"""User-Interactive Authentication sessions: flows, stage order, errors, binding, expiry."""

from __future__ import annotations

import pytest

from dendrite_lite.errors import MatrixError
from dendrite_lite.storage import Storage
from dendrite_lite.users.accounts import create_account
from dendrite_lite.users.registration_tokens import create_token
from dendrite_lite.users.uia import (
    DUMMY,
    PASSWORD,
    REGISTRATION_TOKEN,
    UiaRequired,
    UiaSessions,
)

HS = "example.org"
ALICE = "@alice:example.org"




async def _submit(uia: UiaSessions, storage: Storage, auth, flows, op="op", body=None, user_id=ALICE):
    session, params = uia.start(auth, op, flows, body or {})
    await uia.complete(session, auth, storage=storage, server_name=HS, user_id=user_id)
    return session, params


async def test_no_auth_gets_401_with_flows_and_session_but_no_errcode(storage: Storage) -> None:
    uia = UiaSessions()
    with pytest.raises(UiaRequired) as e:
        await _submit(uia, storage, None, [(PASSWORD,), (DUMMY, PASSWORD)])
    body = e.value.to_json()
    assert e.value.status == 401
    assert "errcode" not in body and "completed" not in body
    assert body["flows"] == [{"stages": [PASSWORD]}, {"stages": [DUMMY, PASSWORD]}]
    assert body["params"] == {} and isinstance(body["session"], str) and len(uia) == 1


async def test_two_stage_flow_in_order(storage: Storage) -> None:
    uia = UiaSessions()
    flows = [(DUMMY, PASSWORD)]
    with pytest.raises(UiaRequired) as e:
        await _submit(uia, storage, None, flows)
    sid = e.value.session.session_id
    with pytest.raises(UiaRequired) as e:
        await _submit(uia, storage, {"type": DUMMY, "session": sid}, flows)
    assert e.value.to_json()["completed"] == [DUMMY] and "errcode" not in e.value.to_json()
    auth = {"type": PASSWORD, "session": sid, "password": "secret",
            "identifier": {"type": "m.id.user", "user": "alice"}}
    session, _ = await _submit(uia, storage, auth, flows)
    assert session.completed == [DUMMY, PASSWORD]
    uia.finish(session)
    with pytest.raises(MatrixError) as e2:
        await _submit(uia, storage, auth, flows)
    assert (e2.value.status, e2.value.errcode) == (400, "M_UNKNOWN")


async def test_stage_out_of_order_or_not_offered_is_refused(storage: Storage) -> None:
    uia = UiaSessions()
    flows = [(DUMMY, PASSWORD)]
    for stage in (PASSWORD, REGISTRATION_TOKEN, "m.login.nonsense"):
        with pytest.raises(UiaRequired) as e:
            await _submit(uia, storage, {"type": stage, "password": "secret", "user": "alice"}, flows)
        body = e.value.to_json()
        assert body["errcode"] == "M_FORBIDDEN" and body["completed"] == []


async def test_wrong_password_is_retryable_401_with_errcode(storage: Storage) -> None:
    uia = UiaSessions()
    flows = [(PASSWORD,)]
    auth = {"type": PASSWORD, "user": "alice", "password": "wrong"}
    with pytest.raises(UiaRequired) as e:
        await _submit(uia, storage, auth, flows)
    body = e.value.to_json()
    assert (e.value.status, body["errcode"]) == (401, "M_FORBIDDEN")
    good = {"type": PASSWORD, "user": "alice", "password": "secret", "session": body["session"]}
    session, _ = await _submit(uia, storage, good, flows)
    assert session.completed == [PASSWORD]


async def test_password_of_another_user_is_plain_403(storage: Storage) -> None:
    await create_account(storage, "@bob:example.org", "bobpw")
    uia = UiaSessions()
    auth = {"type": PASSWORD, "user": "bob", "password": "bobpw"}
    with pytest.raises(MatrixError) as e:
        await _submit(uia, storage, auth, [(PASSWORD,)])
    assert not isinstance(e.value, UiaRequired)
    assert (e.value.status, e.value.errcode) == (403, "M_FORBIDDEN")


async def test_session_is_bound_to_its_operation(storage: Storage) -> None:
    uia = UiaSessions()
    with pytest.raises(UiaRequired) as e:
        await _submit(uia, storage, None, [(DUMMY,)], op="delete device A")
    sid = e.value.session.session_id
    with pytest.raises(MatrixError) as e2:
        await _submit(uia, storage, {"type": DUMMY, "session": sid}, [(DUMMY,)], op="deactivate")
    assert (e2.value.status, e2.value.errcode) == (403, "M_FORBIDDEN")


async def test_body_of_first_request_is_remembered(storage: Storage) -> None:
    uia = UiaSessions()
    with pytest.raises(UiaRequired) as e:
        await _submit(uia, storage, None, [(DUMMY,)], body={"username": "x", "password": "p"})
    sid = e.value.session.session_id
    _, params = await _submit(
        uia, storage, {"type": DUMMY, "session": sid}, [(DUMMY,)],
        body={"auth": {"type": DUMMY, "session": sid}, "password": "q"},
    )
    assert params == {"username": "x", "password": "q"}


async def test_registration_token_stage(storage: Storage) -> None:
    await create_token(storage, now=1, token="abc", uses_allowed=1)
    uia = UiaSessions()
    flows = [(REGISTRATION_TOKEN,)]
    with pytest.raises(UiaRequired) as e:
        await _submit(uia, storage, {"type": REGISTRATION_TOKEN, "token": "wrong"}, flows)
    assert e.value.to_json()["errcode"] == "M_UNAUTHORIZED"
    session, _ = await _submit(uia, storage, {"type": REGISTRATION_TOKEN, "token": "abc"}, flows)
    assert session.registration_token == "abc"


async def test_sessions_expire_and_are_bounded() -> None:
    now = [0.0]
    uia = UiaSessions(clock=lambda: now[0], ttl_s=10, max_sessions=3)
    first, _ = uia.start(None, "op", [(DUMMY,)], {})
    for _ in range(3):
        uia.start(None, "op", [(DUMMY,)], {})
    assert len(uia) == 3  # the oldest was dropped
    with pytest.raises(MatrixError):
        uia.start({"session": first.session_id}, "op", [(DUMMY,)], {})
    now[0] = 11.0
    uia.start(None, "op", [(DUMMY,)], {})
    assert len(uia) == 1


def test_auth_must_be_an_object() -> None:
    with pytest.raises(MatrixError) as e:
        UiaSessions().start("dummy", "op", [(DUMMY,)], {})
    assert e.value.errcode == "M_BAD_JSON"
