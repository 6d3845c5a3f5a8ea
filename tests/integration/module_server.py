"""A module-scoped server for tests that register their own uniquely named users."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.integration.account_helpers import running_server

__all__ = ["server_client"]


async def server_client(
    tmp_path_factory: pytest.TempPathFactory, name: str, overrides: dict[str, Any] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """Use as `yield from`-style body of a module fixture: the running server's client API."""
    async with running_server(tmp_path_factory.mktemp(name), overrides) as srv:
        yield srv.client
