"""3PIDs bound at an identity server through a real server (client-server §Adding Account
Administrative Contact Information: /account/3pid/bind, /unbind, /delete; §Account
deactivation), against the test identity server on loopback (tests/integration/identity_server.py): the
binding is published there, recorded here, and unbound there, with our X-Matrix signature."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dendrite_lite.storage import threepid_bindings as bindings_table
from dendrite_lite.storage import threepids as threepids_table
from tests.conftest import RunningServer
from tests.integration.identity_server import TOKEN, FakeIdentityServer, identity_overrides
from tests.integration.account_helpers import V3, running_server, server_storage, uia_password
from tests.integration.room_helpers import User, new_user
from tests.interop.synapse_server import free_port
from tests.spec_schema import assert_matches_operation


@pytest.fixture(scope="module")
async def srv(
    tmp_path_factory: pytest.TempPathFactory, identity_server: FakeIdentityServer
) -> AsyncIterator[RunningServer]:
    async with running_server(
        tmp_path_factory.mktemp("bindings"), identity_overrides(identity_server)
    ) as s:
        identity_server.homeservers[s.config.server.server_name] = s.listening.federation_url or ""
        yield s


async def _bind(user: User, ids: FakeIdentityServer, address: str, *, prefix: str = V3) -> None:
    sid = ids.validate("email", address, "s3cret")
    await user.call("POST", f"{prefix}/account/3pid/bind", {
        "id_server": ids.name, "id_access_token": TOKEN, "sid": sid, "client_secret": "s3cret",
    })


async def _recorded(srv: RunningServer, user: User) -> list[tuple[str, str, str]]:
    rows = await server_storage(srv).db.read(
        lambda c: bindings_table.select_user_bindings(c, user.user_id)
    )
    return [(b.medium, b.address, b.id_server) for b in rows]


async def test_bind_publishes_and_records(srv: RunningServer, identity_server: FakeIdentityServer) -> None:
    ids = identity_server
    alice = await new_user(srv, "alice")
    await _bind(alice, ids, "alice@example.org")
    assert ids.lookup("email", "alice@example.org") == alice.user_id
    assert await _recorded(srv, alice) == [("email", "alice@example.org", ids.name)]


async def test_unbind_without_id_server_uses_the_recorded_one(
    srv: RunningServer, identity_server: FakeIdentityServer
) -> None:
    ids = identity_server
    bob = await new_user(srv, "bob")
    await _bind(bob, ids, "bob@example.org", prefix="/_matrix/client/unstable")
    signed_before = ids.unbind_auth.count("signature")
    resp = await bob.call(
        "POST", "/_matrix/client/unstable/account/3pid/unbind",
        {"medium": "email", "address": "Bob@Example.org"},
    )
    assert resp.json() == {"id_server_unbind_result": "success"}
    assert_matches_operation(
        "client-server/administrative_contact.yaml", "/account/3pid/unbind", "post", 200, resp.json()
    )
    assert ids.lookup("email", "bob@example.org") is None
    # The identity server checked our signature against the key we publish.
    assert ids.unbind_auth.count("signature") == signed_before + 1
    assert await _recorded(srv, bob) == []
    # Nothing recorded any more: we do not know where to unbind.
    resp = await bob.call("POST", "/account/3pid/unbind", {"medium": "email", "address": "bob@example.org"})
    assert resp.json() == {"id_server_unbind_result": "no-support"}


async def test_unbind_and_delete_at_a_named_id_server_when_bound_out_of_band(
    srv: RunningServer, identity_server: FakeIdentityServer
) -> None:
    ids = identity_server
    carol = await new_user(srv, "carol")
    ids.bind_out_of_band("email", "carol@example.org", carol.user_id)
    resp = await carol.call("POST", "/account/3pid/unbind", {
        "medium": "email", "address": "carol@example.org", "id_server": ids.name,
    })
    assert resp.json() == {"id_server_unbind_result": "success"}
    assert ids.lookup("email", "carol@example.org") is None
    ids.bind_out_of_band("email", "carol@example.org", carol.user_id)
    resp = await carol.call("POST", "/account/3pid/delete", {
        "medium": "email", "address": "carol@example.org", "id_server": ids.name,
    })
    assert resp.json() == {"id_server_unbind_result": "success"}
    assert ids.lookup("email", "carol@example.org") is None


async def test_delete_unbinds_and_removes_the_accounts_address(
    srv: RunningServer, identity_server: FakeIdentityServer
) -> None:
    ids = identity_server
    dave = await new_user(srv, "dave")
    await server_storage(srv).db.write(lambda c: threepids_table.insert_user_threepid(
        c, dave.user_id, "email", "dave@example.org", validated_at=1, added_at=1
    ))
    await _bind(dave, ids, "dave@example.org")
    resp = await dave.call("POST", "/account/3pid/delete", {"medium": "email", "address": "dave@example.org"})
    assert resp.json() == {"id_server_unbind_result": "success"}
    assert_matches_operation(
        "client-server/administrative_contact.yaml", "/account/3pid/delete", "post", 200, resp.json()
    )
    assert ids.lookup("email", "dave@example.org") is None
    assert await server_storage(srv).db.read(
        lambda c: threepids_table.select_user_threepids(c, dave.user_id)
    ) == []
    # An address the identity server never had: deleted here, nothing to unbind.
    resp = await dave.call("POST", "/account/3pid/delete", {"medium": "email", "address": "x@example.org"})
    assert resp.json() == {"id_server_unbind_result": "no-support"}


async def test_deactivation_unbinds_everything(
    srv: RunningServer, identity_server: FakeIdentityServer
) -> None:
    ids = identity_server
    erin = await new_user(srv, "erin")
    await server_storage(srv).db.write(lambda c: threepids_table.insert_user_threepid(
        c, erin.user_id, "email", "erin@example.org", validated_at=1, added_at=1
    ))
    await _bind(erin, ids, "erin@example.org")
    await _bind(erin, ids, "erin2@example.org")
    resp = await uia_password(
        srv.client, "POST", f"{V3}/account/deactivate", erin.token, erin.user_id
    )
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"id_server_unbind_result": "success"}
    assert ids.lookup("email", "erin@example.org") is None
    assert ids.lookup("email", "erin2@example.org") is None
    assert await _recorded(srv, erin) == []
    assert await server_storage(srv).db.read(
        lambda c: threepids_table.select_user_threepids(c, erin.user_id)
    ) == []


async def test_deactivation_with_an_id_server_that_is_down_still_deactivates(
    srv: RunningServer, identity_server: FakeIdentityServer
) -> None:
    frank = await new_user(srv, "frank")
    await _bind(frank, identity_server, "frank@example.org")
    resp = await uia_password(
        srv.client, "POST", f"{V3}/account/deactivate", frank.token, frank.user_id,
        {"id_server": f"127.0.0.1:{free_port()}"},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"id_server_unbind_result": "no-support"}
    assert (await frank.call("GET", "/account/whoami", expect=401)).json()["errcode"] == "M_UNKNOWN_TOKEN"


async def test_identity_server_errors_are_matrix_errors(
    srv: RunningServer, identity_server: FakeIdentityServer
) -> None:
    ids = identity_server
    gina = await new_user(srv, "gina")
    body = {"id_server": ids.name, "id_access_token": TOKEN, "sid": "nope", "client_secret": "x"}
    # The identity server's own error, passed on.
    resp = await gina.call("POST", "/account/3pid/bind", body, expect=404)
    assert resp.json()["errcode"] == "M_NO_VALID_SESSION"
    resp = await gina.call("POST", "/account/3pid/bind", {**body, "id_access_token": "bad"}, expect=401)
    assert resp.json()["errcode"] == "M_UNAUTHORIZED"
    # Nobody listening there.
    resp = await gina.call(
        "POST", "/account/3pid/bind", {**body, "id_server": f"127.0.0.1:{free_port()}"}, expect=502
    )
    assert resp.json()["errcode"] == "M_UNKNOWN"
    resp = await gina.call("POST", "/account/3pid/bind", {**body, "id_server": "not a host"}, expect=400)
    assert resp.json()["errcode"] == "M_INVALID_PARAM"
    resp = await gina.call("POST", "/account/3pid/bind", {"id_server": ids.name}, expect=400)
    assert resp.json()["errcode"] == "M_MISSING_PARAM"
    resp = await gina.call("POST", "/account/3pid/unbind", {"medium": "carrier-pigeon", "address": "x"}, expect=400)
    assert resp.json()["errcode"] == "M_INVALID_PARAM"


async def test_identity_servers_on_private_addresses_are_refused_by_default(
    tmp_path: Path, identity_server: FakeIdentityServer
) -> None:
    async with running_server(tmp_path, {"identity_server.ca_file": identity_server.cert}) as s:
        user = await new_user(s, "hank")
        resp = await user.call("POST", "/account/3pid/bind", {
            "id_server": identity_server.name, "id_access_token": TOKEN, "sid": "s",
            "client_secret": "x",
        }, expect=403)
        assert resp.json()["errcode"] == "M_SERVER_NOT_TRUSTED"
