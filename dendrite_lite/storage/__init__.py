"""Storage: the one SQLite database and the SQL that reads and writes it.

`Storage` is a plain facade: it opens the database (applying migrations first) and holds the
`Database`. The table modules (`storage.accounts`, `storage.devices`, ...) are plain functions
taking a connection, called inside `storage.db.write(fn)` / `storage.db.read(fn)`:

    storage = await Storage.open(config.database_path, synchronous="FULL", readers=4)
    account = await storage.db.read(lambda conn: accounts.select_account(conn, user_id))
    await storage.close()
"""

from __future__ import annotations

import os
from pathlib import Path

from dendrite_lite.storage.database import Database, DatabaseClosed, WriteStats
from dendrite_lite.storage.migrations import MigrationError, SchemaTooNew, apply_migrations

__all__ = ["Storage", "Database", "DatabaseClosed", "WriteStats", "SchemaTooNew", "MigrationError"]


class Storage:
    def __init__(self, db: Database) -> None:
        self.db = db

    @classmethod
    async def open(
        cls, path: Path, *, synchronous: str = "FULL", readers: int = 4
    ) -> Storage:
        """Create the file if needed, apply migrations, open the connections.

        Raises SchemaTooNew (database from a newer dendrite-lite; nothing touched) or
        MigrationError (a migration failed; the database is as it was before that migration).
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        _create_private(path)
        await apply_migrations(path)
        db = await Database.open(path, synchronous=synchronous, readers=readers)
        return cls(db)

    async def close(self) -> None:
        await self.db.close()


def _create_private(path: Path) -> None:
    """Create an empty database file readable by its owner only: it holds password hashes.

    SQLite gives the -wal and -shm files the same permissions as the database file.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)
