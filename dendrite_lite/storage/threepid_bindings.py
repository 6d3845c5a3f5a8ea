"""Third-party identifiers bound at identity servers through us (schema in
migrations/0038_threepid_bindings.sql; the service is users/threepid_bindings.py).

Addresses are compared as given: the service stores and asks with the same normalised form.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiosqlite

__all__ = [
    "Binding",
    "delete_binding",
    "insert_binding",
    "select_binding_servers",
    "select_user_bindings",
]

INSERT = (
    "INSERT INTO threepid_bindings (user_id, medium, address, id_server, bound_ts)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET bound_ts = excluded.bound_ts"
)
SELECT_SERVERS = (
    "SELECT id_server FROM threepid_bindings WHERE user_id = ? AND medium = ? AND address = ?"
    " ORDER BY bound_ts, id_server"
)
SELECT_USER = (
    "SELECT user_id, medium, address, id_server FROM threepid_bindings WHERE user_id = ?"
    " ORDER BY bound_ts, medium, address, id_server"
)
DELETE = (
    "DELETE FROM threepid_bindings"
    " WHERE user_id = ? AND medium = ? AND address = ? AND id_server = ?"
)


@dataclass(frozen=True, slots=True)
class Binding:
    user_id: str
    medium: str
    address: str
    id_server: str


async def insert_binding(conn: aiosqlite.Connection, binding: Binding, now: int) -> None:
    """Record a bind (again: a newer time)."""
    await conn.execute(
        INSERT, (binding.user_id, binding.medium, binding.address, binding.id_server, now)
    )


async def select_binding_servers(
    conn: aiosqlite.Connection, user_id: str, medium: str, address: str
) -> list[str]:
    """The identity servers the user bound this address at through us, oldest bind first."""
    async with conn.execute(SELECT_SERVERS, (user_id, medium, address)) as cur:
        return [str(row[0]) for row in await cur.fetchall()]


async def select_user_bindings(conn: aiosqlite.Connection, user_id: str) -> list[Binding]:
    """Every binding of the user (deactivation unbinds them all)."""
    async with conn.execute(SELECT_USER, (user_id,)) as cur:
        return [Binding(*map(str, row)) for row in await cur.fetchall()]


async def delete_binding(conn: aiosqlite.Connection, binding: Binding) -> None:
    await conn.execute(
        DELETE, (binding.user_id, binding.medium, binding.address, binding.id_server)
    )
