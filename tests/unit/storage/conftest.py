"""The fixture the storage table tests share: a fresh database with every migration applied."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dendrite_lite.storage import Storage


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[Storage]:
    s = await Storage.open(tmp_path / "homeserver.db", readers=1)
    yield s
    await s.close()
