"""The server name a database belongs to (table server_identity, migration 0013).

A Matrix server's name is in every user id, room alias and signature it ever made, so a database
serves one name for life. The name is recorded at first start (claim_server_name) and checked at
every start and by `config check` (recorded_server_name, which never writes).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiosqlite

__all__ = [
    "ServerNameChanged",
    "claim_server_name",
    "recorded_server_name",
    "check_server_name",
]

_SELECT = "SELECT server_name FROM server_identity WHERE id = 1"
_HAS_TABLE = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
# The server of the oldest account: what migration 0013 records for a database that predates it
# (keep the two the same). Accounts are local only, and a localpart has no ':'.
_SELECT_FROM_ACCOUNTS = (
    "SELECT substr(user_id, instr(user_id, ':') + 1) FROM accounts"
    " ORDER BY created_ts, user_id LIMIT 1"
)
# The accounts' server before the configured name: an account can exist before the first start
# (`init` creates the admin, or `create-account` ran first), and then it is the one that is sure.
_INSERT_IF_NONE = (
    "INSERT OR IGNORE INTO server_identity (id, server_name)"
    f" VALUES (1, COALESCE(({_SELECT_FROM_ACCOUNTS}), ?))"
)


class ServerNameChanged(Exception):
    """The configured server name is not the one the database was created for."""

    def __init__(self, database: Path, recorded: str, configured: str) -> None:
        super().__init__(
            f'server.server_name is "{configured}", but the database {database} belongs to'
            f' "{recorded}". A server name cannot change (user IDs, room aliases and signatures'
            f' carry it): set server.server_name = "{recorded}" again, or start "{configured}"'
            " afresh with another data_dir (or database.path)."
        )
        self.recorded = recorded
        self.configured = configured


async def claim_server_name(conn: aiosqlite.Connection, server_name: str) -> str:
    """Record the database's server name unless one is recorded already; return the recorded
    name. That is its accounts' server if it has any, else `server_name` (the configured one).

    So a database created before migration 0013 and holding no account gets the name configured
    at its first start after the upgrade: nothing in it says which name it had.
    """
    await conn.execute(_INSERT_IF_NONE, (server_name,))
    async with conn.execute(_SELECT) as cur:
        row = await cur.fetchone()
    assert row is not None  # inserted just above if it was missing
    return str(row[0])


def recorded_server_name(path: Path) -> str | None:
    """The name the database at `path` belongs to, read without writing anything (no file, no
    migration): what claim_server_name would find. None: no database yet, or none recorded and
    no account to tell, so the next start records the configured name."""
    if not path.exists():
        return None
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        if conn.execute(_HAS_TABLE, ("server_identity",)).fetchone() is not None:
            row = conn.execute(_SELECT).fetchone()
            if row is not None:
                return str(row[0])
        # Not migrated yet (or never started since): what migration 0013 will find.
        if conn.execute(_HAS_TABLE, ("accounts",)).fetchone() is not None:
            row = conn.execute(_SELECT_FROM_ACCOUNTS).fetchone()
            if row is not None:
                return str(row[0])
        return None
    finally:
        conn.close()


def check_server_name(path: Path, server_name: str) -> None:
    """Raise ServerNameChanged if the database at `path` belongs to another name."""
    recorded = recorded_server_name(path)
    if recorded is not None and recorded != server_name:
        raise ServerNameChanged(path, recorded, server_name)
