"""Fixtures of the TUI tests: one real server for the tests/tui package (registration open, cheap
password hashing), whose admin unix socket the TUI and the tests talk to.

    async def test_x(tui_server: RunningServer, admin_socket: Path) -> None:
        client = AdminClient(admin_socket)
        ...

Tests that need a server of their own (not running, restarted, other config) use `start_server`
or tests.integration.account_helpers.running_server instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import RunningServer
from tests.integration.account_helpers import running_server


# Package scope, not session: running_server keeps cheap password hashing on (a process-wide
# setting) while the server lives, and tests after tests/tui (tests/unit) check the real one.
@pytest.fixture(scope="package")
async def tui_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path_factory.mktemp("tui")) as srv:
        yield srv


@pytest.fixture(scope="package")
def admin_socket(tui_server: RunningServer) -> Path:
    """The path of the package server's admin socket."""
    assert tui_server.listening.admin_socket is not None
    return tui_server.listening.admin_socket
