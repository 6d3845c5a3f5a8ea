"""MSC4143 RTC transports from [calls] livekit_service_url: `org.matrix.msc4143.rtc_foci` in
/.well-known/matrix/client and the authenticated /rtc/transports, each absent (404
M_UNRECOGNIZED, as Synapse without msc4143_enabled) when no SFU is configured; and the config's
error messages."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from dendrite_lite.config import CallsConfig, ConfigError, parse_config
from dendrite_lite.rtc_transports import rtc_transports
from tests.conftest import RunningServer
from tests.integration.account_helpers import auth_header, register, running_server

TRANSPORTS = "/_matrix/client/unstable/org.matrix.msc4143/rtc/transports"
SERVICE = "https://livekit-jwt.example.org"
FOCI = [{"type": "livekit", "livekit_service_url": SERVICE}]


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    overrides = {"calls.livekit_service_url": SERVICE + "/"}  # the slash is dropped
    async with running_server(tmp_path_factory.mktemp("rtc"), overrides) as s:
        yield s


async def test_the_well_known_names_the_sfu(srv: RunningServer) -> None:
    resp = await srv.client.get("/.well-known/matrix/client")
    assert resp.status_code == 200
    body = resp.json()
    assert body["org.matrix.msc4143.rtc_foci"] == FOCI
    assert body["m.homeserver"]["base_url"] == "https://test.localhost"


async def test_transports_for_a_user(srv: RunningServer) -> None:
    user = await register(srv.client, "rtc_alice")
    resp = await srv.client.get(TRANSPORTS, headers=auth_header(user["access_token"]))
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"rtc_transports": FOCI}
    resp = await srv.client.get(TRANSPORTS)
    assert resp.status_code == 401
    assert resp.json()["errcode"] == "M_MISSING_TOKEN"


async def test_without_an_sfu_neither_is_there(client) -> None:  # type: ignore[no-untyped-def]
    resp = await client.get("/.well-known/matrix/client")
    assert resp.status_code == 200
    assert "org.matrix.msc4143.rtc_foci" not in resp.json()
    resp = await client.get(TRANSPORTS)
    assert resp.status_code == 404
    assert resp.json()["errcode"] == "M_UNRECOGNIZED"


def _error(calls: dict[str, object]) -> str:
    with pytest.raises(ConfigError) as e:
        parse_config({"server": {"server_name": "example.org"}, "calls": calls})
    return str(e.value)


def test_config_errors_name_the_key() -> None:
    assert _error({"livekit_service_url": "wss://sfu.example.org"}) == (
        'calls.livekit_service_url: "wss://sfu.example.org" is not an http(s) URL '
        '(e.g. "https://livekit-jwt.example.org")'
    )
    assert _error({"livekit_service_url": "https://jwt.example.org/?x=1"}) == (
        'calls.livekit_service_url: "https://jwt.example.org/?x=1" must not have a query string'
    )
    assert _error({"max_event_delay_s": -1}) == "calls.max_event_delay_s: -1 is out of range (at least 0)"
    assert _error({"livekit_url": SERVICE}).startswith(
        'calls.livekit_url: unknown key; did you mean "livekit_service_url"?'
    )


def test_config_defaults_and_transports() -> None:
    calls = parse_config({"server": {"server_name": "example.org"}}).calls
    assert calls == CallsConfig(livekit_service_url="", max_event_delay_s=86400)
    assert rtc_transports(calls) == []
    path = CallsConfig(livekit_service_url="https://example.org/livekit/jwt/")
    assert rtc_transports(path) == [
        {"type": "livekit", "livekit_service_url": "https://example.org/livekit/jwt"}
    ]
