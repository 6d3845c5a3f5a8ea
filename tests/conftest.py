"""Shared fixtures. The integration harness starts REAL servers (dendrite_lite.server.serve, i.e.
Quart apps on Hypercorn, on 127.0.0.1 with free ports) with a temporary data directory and a fresh signing key,
and hands out httpx clients pointed at them.

- `server` (session): one default server shared by every test that needs nothing special.
- `start_server` (function): a factory for servers with config overrides and/or extra test-only
  routes; everything it started is stopped when the test ends:

      srv = await start_server({"limits.max_request_bytes": 64}, configure_app=add_routes)
      resp = await srv.client.post("/_test/echo", content=b"...")
"""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from quart import Quart
from dendrite_lite.config import Config, ListenConfig, ServerConfig
from dendrite_lite.crypto.keys import ServerKey, load_signing_key, new_server_key, write_signing_key
from dendrite_lite.event_loop import new_event_loop
from dendrite_lite.server import Listener, Listening, serve
from tests.spec_paths import SPEC_DIR

SERVER_NAME = "test.localhost"

# Session fixtures of real peers, registered here so that every module shares one instance:
# `dns_zone` (dnsmasq serving the doctor.test zone), `smtp_sink` (an SMTP server keeping mail),
# `identity_server` (an identity server on loopback).
pytest_plugins = (
    "tests.dns_server", "tests.integration.smtp_sink", "tests.integration.identity_server",
)

ConfigureApp = Callable[[Quart, Listener], object]


@dataclasses.dataclass
class RunningServer:
    config: Config
    key: ServerKey
    listening: Listening
    client: httpx.AsyncClient  # base_url = the client listener
    federation: httpx.AsyncClient  # base_url = the federation listener
    task: asyncio.Task[None]
    stop_event: asyncio.Event

    def app(self, listener: Listener = "client") -> Quart:
        return self.listening.apps[listener]

    async def stop(self) -> None:
        """Trigger a graceful shutdown and wait for serve() to return (storage closed)."""
        self.stop_event.set()
        await self.task
        await self.client.aclose()
        await self.federation.aclose()


def with_overrides(config: Config, overrides: dict[str, Any]) -> Config:
    """Apply `{"section.key": value}` overrides to the frozen config."""
    for dotted, value in overrides.items():
        section, _, key = dotted.partition(".")
        if not key:
            config = dataclasses.replace(config, **{section: value})
            continue
        sub = dataclasses.replace(getattr(config, section), **{key: value})
        config = dataclasses.replace(config, **{section: sub})
    return config


def make_config(data_dir: Path, overrides: dict[str, Any] | None = None) -> Config:
    config = Config(
        server=ServerConfig(server_name=SERVER_NAME, data_dir=data_dir),
        listen=ListenConfig(client="127.0.0.1:0", federation="127.0.0.1:0"),
    )
    return with_overrides(config, overrides or {})


async def launch(
    data_dir: Path,
    overrides: dict[str, Any] | None = None,
    *,
    configure_app: ConfigureApp | None = None,
) -> RunningServer:
    config = make_config(data_dir, overrides)
    if config.signing_key_path.exists():  # a restart, or a restored backup: the same server
        key = load_signing_key(config.signing_key_path)
    else:
        key = new_server_key()
        write_signing_key(config.signing_key_path, key)
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[Listening] = loop.create_future()
    stop = asyncio.Event()
    task: asyncio.Task[None] = loop.create_task(
        serve(config, shutdown_trigger=stop.wait, ready=ready.set_result, configure_app=configure_app)
    )
    # serve() failing before it is ready (bad config, no key) must fail the test, not hang it.
    await asyncio.wait([ready, task], return_when=asyncio.FIRST_COMPLETED)  # type: ignore[type-var]
    if not ready.done():
        await task
        raise AssertionError("serve() returned without becoming ready")
    listening = ready.result()
    assert listening.federation_url is not None
    return RunningServer(
        config=config,
        key=key,
        listening=listening,
        client=httpx.AsyncClient(base_url=listening.client_url, timeout=10, verify=_SSL_CONTEXT),
        federation=httpx.AsyncClient(
            base_url=listening.federation_url, timeout=10, verify=_SSL_CONTEXT
        ),
        task=task,
        stop_event=stop,
    )


# Creating an SSL context (loading the CA bundle) costs ~25 ms; every test client shares one.
_SSL_CONTEXT = ssl.create_default_context()

StartServer = Callable[..., Awaitable[RunningServer]]


def pytest_configure(config: pytest.Config) -> None:
    # Without this, collection stops at the first FileNotFoundError and no test runs.
    if not (SPEC_DIR / "data" / "api" / "client-server").is_dir():
        raise pytest.UsageError(
            f"the Matrix spec sources are not at {SPEC_DIR}: run the tests with "
            "`bash scripts/test.sh` (it finds or fetches them) or set MATRIX_SPEC_DIR"
        )


def pytest_asyncio_loop_factories(config: Any, item: Any) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Tests run on the loop the server runs on by default (asyncio with our TLS settings)."""
    return {"loop": new_event_loop}


@pytest.fixture(scope="session")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    srv = await launch(tmp_path_factory.mktemp("server"))
    yield srv
    await srv.stop()


@pytest.fixture
async def client(server: RunningServer) -> httpx.AsyncClient:
    return server.client


@pytest.fixture
async def start_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[StartServer]:
    started: list[RunningServer] = []

    async def start(
        overrides: dict[str, Any] | None = None, *, configure_app: ConfigureApp | None = None
    ) -> RunningServer:
        srv = await launch(
            tmp_path_factory.mktemp("server"), overrides, configure_app=configure_app
        )
        started.append(srv)
        return srv

    yield start
    for srv in started:
        if not srv.task.done():
            await srv.stop()
