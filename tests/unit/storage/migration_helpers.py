"""Testing one migration against rows written before it: `up_to(tmp_path, NAME)` applies every
migration before NAME and answers the database path; `then_apply(tmp_path)` applies NAME and
the later ones (`only=NAME`: that one alone) and answers the versions applied."""

from __future__ import annotations

import shutil
from pathlib import Path

from dendrite_lite.storage.migrations import MIGRATIONS_DIR, apply_migrations

__all__ = ["then_apply", "up_to"]


async def up_to(tmp_path: Path, name: str) -> Path:
    directory = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, directory)
    (tmp_path / "held").mkdir()
    for p in sorted(directory.glob("*.sql")):
        if p.name >= name:
            p.rename(tmp_path / "held" / p.name)
    path = tmp_path / "db.sqlite"
    await apply_migrations(path, directory=directory)
    return path


async def then_apply(tmp_path: Path, only: str | None = None) -> list[int]:
    directory = tmp_path / "migrations"
    for p in (tmp_path / "held").glob("*.sql"):
        if only is None or p.name == only:
            p.rename(directory / p.name)
    return [m.version for m in await apply_migrations(tmp_path / "db.sqlite", directory=directory)]
