"""A media repository over a real SQLite database and file store in the test's tmp_path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dendrite_lite.media.repository import MediaRepository
from dendrite_lite.media.store import FileStore
from dendrite_lite.storage import Storage


@pytest.fixture
async def repo(tmp_path: Path) -> AsyncIterator[MediaRepository]:
    storage = await Storage.open(tmp_path / "homeserver.db", readers=2)
    files = FileStore(tmp_path / "media")
    files.prepare()
    yield MediaRepository(storage, files)
    await storage.close()
