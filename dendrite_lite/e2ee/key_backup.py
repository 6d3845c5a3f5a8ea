"""Server-side key backups (end_to_end_encryption.md §Server-side key backups; key_backup.yaml):
/room_keys/version and /room_keys/keys[/{roomId}[/{sessionId}]].

- versions are per user, counted up and never reused; only the newest backup not deleted (the
  current one) takes keys: writing to another is 403 M_WRONG_ROOM_KEYS_VERSION naming the
  current version;
- a key uploaded for a session the backup already holds replaces it only when it is better:
  verified beats unverified, then the lower first_message_index, then the lower
  forwarded_count; on a tie the stored key stays;
- `etag` changes whenever the backup's keys change, `count` is how many it holds;
- `auth_data` and `session_data` are the algorithm's and stored as sent: the spec describes
  them as objects, but Synapse accepts any JSON value (SyTest sends strings).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiosqlite

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.request_body import is_json_type, required_field
from dendrite_lite.storage import Storage
from dendrite_lite.storage import key_backup as table
from dendrite_lite.storage.key_backup import Backup, RoomKey

__all__ = ["KeyBackupService", "is_better", "parse_keys"]

Keys = dict[str, dict[str, dict[str, Any]]]  # room_id -> session_id -> key data


def is_better(new: RoomKey, old: RoomKey) -> bool:
    """Whether `new` should replace `old` (the spec's order of preference)."""
    if new.is_verified != old.is_verified:
        return new.is_verified
    if new.first_message_index != old.first_message_index:
        return new.first_message_index < old.first_message_index
    return new.forwarded_count < old.forwarded_count


def _no_backup(version: str) -> MatrixError:
    return MatrixError(Errcode.NOT_FOUND, f"Unknown backup version {version[:40]!r}")


def _version_number(version: str) -> int | None:
    return int(version) if version.isdigit() and len(version) < 19 else None


def _room_key(room_id: str, session_id: str, data: Any) -> RoomKey:
    what = f"rooms.{room_id}.sessions.{session_id}"
    if not isinstance(data, dict):
        raise MatrixError(Errcode.BAD_JSON, f"{what} must be an object")
    for name, kind in (
        ("first_message_index", "integer"), ("forwarded_count", "integer"), ("is_verified", "boolean"),
    ):
        if not is_json_type(data.get(name), kind):  # type: ignore[arg-type]
            raise MatrixError(Errcode.BAD_JSON, f"{what}.{name} must be of type {kind}")
    return RoomKey(
        room_id, session_id, data["first_message_index"], data["forwarded_count"],
        data["is_verified"], _opaque(data, "session_data", what=f"{what}.session_data"),
    )


def _opaque(body: Mapping[str, Any], key: str, *, what: str | None = None) -> Any:
    """Algorithm data: any JSON value but null (400 M_MISSING_PARAM without it)."""
    if body.get(key) is None:
        raise MatrixError(Errcode.MISSING_PARAM, f"{what or key} is required")
    return body[key]


def parse_keys(body: Mapping[str, Any]) -> list[RoomKey]:
    """The keys of a PUT /room_keys/keys body ({"rooms": {room: {"sessions": {...}}}})."""
    out: list[RoomKey] = []
    for room_id, room in required_field(body, "rooms", "object").items():
        if not isinstance(room, dict) or not isinstance(room.get("sessions"), dict):
            raise MatrixError(Errcode.BAD_JSON, f"rooms.{room_id}.sessions must be an object")
        out.extend(_room_key(room_id, s, data) for s, data in room["sessions"].items())
    return out


class KeyBackupService:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    # --- versions ----------------------------------------------------------------------------

    async def create_version(self, user_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST /_matrix/client/v3/room_keys/version"""
        algorithm = required_field(body, "algorithm", "string")
        auth_data = _opaque(body, "auth_data")
        version = await self._storage.db.write(
            lambda conn: table.insert_backup(conn, user_id, algorithm, auth_data)
        )
        return {"version": str(version)}

    async def get_version(self, user_id: str, version: str | None) -> dict[str, Any]:
        """GET /_matrix/client/v3/room_keys/version[/{version}] (None: the current backup)."""

        async def read(conn: aiosqlite.Connection) -> dict[str, Any]:
            backup = await _live_backup(conn, user_id, version)
            count = await table.count_room_keys(conn, user_id, backup.version)
            return {
                "algorithm": backup.algorithm,
                "auth_data": backup.auth_data,
                "count": count,
                "etag": str(backup.etag),
                "version": str(backup.version),
            }

        return await self._storage.db.read(read)

    async def update_version(self, user_id: str, version: str, body: Mapping[str, Any]) -> None:
        """PUT /_matrix/client/v3/room_keys/version/{version}: only auth_data may change."""
        algorithm = required_field(body, "algorithm", "string")
        auth_data = _opaque(body, "auth_data")
        if "version" in body and body["version"] != version:
            raise MatrixError(Errcode.INVALID_PARAM, "The version in the body is not the path's")

        async def txn(conn: aiosqlite.Connection) -> None:
            backup = await _live_backup(conn, user_id, version)
            if algorithm != backup.algorithm:
                raise MatrixError(Errcode.INVALID_PARAM, "A backup's algorithm cannot change")
            await table.update_backup_auth_data(conn, user_id, backup.version, auth_data)

        await self._storage.db.write(txn)

    async def delete_version(self, user_id: str, version: str) -> None:
        """DELETE /_matrix/client/v3/room_keys/version/{version}; a backup deleted before is
        no error."""

        async def txn(conn: aiosqlite.Connection) -> None:
            number = _version_number(version)
            backup = await table.select_backup(conn, user_id, number) if number is not None else None
            if backup is None:
                raise _no_backup(version)
            await table.mark_backup_deleted(conn, user_id, backup.version)

        await self._storage.db.write(txn)

    # --- keys --------------------------------------------------------------------------------

    async def put_keys(self, user_id: str, version: str, keys: list[RoomKey]) -> dict[str, Any]:
        """PUT /_matrix/client/v3/room_keys/keys[/{roomId}[/{sessionId}]] -> {etag, count}."""

        async def txn(conn: aiosqlite.Connection) -> dict[str, Any]:
            current = await table.select_latest_backup(conn, user_id)
            if current is None:
                raise _no_backup(version)
            if str(current.version) != version:
                raise MatrixError(
                    Errcode.WRONG_ROOM_KEYS_VERSION, "Not the current backup version",
                    current_version=str(current.version),
                )
            changed = False
            for key in keys:
                old = await table.select_room_key(conn, user_id, current.version, key.room_id, key.session_id)
                if old is None or is_better(key, old):
                    await table.upsert_room_key(conn, user_id, current.version, key)
                    changed = True
            if changed:
                await table.touch_backup(conn, user_id, current.version)
            return await _etag_and_count(conn, user_id, current.version)

        return await self._storage.db.write(txn)

    async def get_keys(
        self, user_id: str, version: str, room_id: str | None = None, session_id: str | None = None
    ) -> dict[str, Any]:
        """GET /_matrix/client/v3/room_keys/keys[/{roomId}[/{sessionId}]]"""

        async def read(conn: aiosqlite.Connection) -> list[RoomKey]:
            backup = await _live_backup(conn, user_id, version)
            return await table.select_room_keys(conn, user_id, backup.version, room_id, session_id)

        found = await self._storage.db.read(read)
        if session_id is not None:
            if not found:
                raise MatrixError(Errcode.NOT_FOUND, "No key for this session in the backup")
            return found[0].to_json()
        rooms: Keys = {}
        for key in found:
            rooms.setdefault(key.room_id, {})[key.session_id] = key.to_json()
        if room_id is not None:
            return {"sessions": rooms.get(room_id, {})}
        return {"rooms": {r: {"sessions": s} for r, s in rooms.items()}}

    async def delete_keys(
        self, user_id: str, version: str, room_id: str | None = None, session_id: str | None = None
    ) -> dict[str, Any]:
        """DELETE /_matrix/client/v3/room_keys/keys[/{roomId}[/{sessionId}]] -> {etag, count}."""

        async def txn(conn: aiosqlite.Connection) -> dict[str, Any]:
            backup = await _live_backup(conn, user_id, version)
            if await table.delete_room_keys(conn, user_id, backup.version, room_id, session_id):
                await table.touch_backup(conn, user_id, backup.version)
            return await _etag_and_count(conn, user_id, backup.version)

        return await self._storage.db.write(txn)


async def _live_backup(conn: aiosqlite.Connection, user_id: str, version: str | None) -> Backup:
    """The backup `version` (None: the current one) unless deleted; 404 otherwise."""
    if version is None:
        backup = await table.select_latest_backup(conn, user_id)
        if backup is None:
            raise MatrixError(Errcode.NOT_FOUND, "No current backup version")
        return backup
    number = _version_number(version)
    backup = await table.select_backup(conn, user_id, number) if number is not None else None
    if backup is None or backup.deleted:
        raise _no_backup(version)
    return backup


async def _etag_and_count(conn: aiosqlite.Connection, user_id: str, version: int) -> dict[str, Any]:
    backup = await table.select_backup(conn, user_id, version)
    assert backup is not None
    return {"etag": str(backup.etag), "count": await table.count_room_keys(conn, user_id, version)}
