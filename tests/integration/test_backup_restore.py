"""Backups taken while the server works, restored into a new data directory and served again:
every acknowledged event, the room state, the accounts and the media files are back, and the
database passes its integrity check. Restores that would do harm are refused."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from pathlib import Path

import pytest

from dendrite_lite.backup.create import BackupError, make_backup
from dendrite_lite.backup.restore import restore_backup
from dendrite_lite.backup.schedule import SCHEDULED_PREFIX
from dendrite_lite.storage.backup import integrity_problems
from tests.conftest import RunningServer, make_config
from tests.integration.account_helpers import PASSWORD, running_server
from tests.integration.media_helpers import AUTHED, mxc_parts, upload
from tests.integration.room_helpers import V3, User, new_user

SENDERS = 16


async def _send_until(user: User, room_id: str, stop: asyncio.Event, acked: list[tuple[float, str]]) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        event_id = await user.send(room_id, f"{user.user_id} #{n}")
        acked.append((time.monotonic(), event_id))


async def _upload_until(user: User, stop: asyncio.Event, uploaded: list[tuple[float, str, bytes]]) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        data = os.urandom(256 * 1024) + f"{n}".encode()
        uri = await upload(user.client, {"Authorization": f"Bearer {user.token}"}, data)
        uploaded.append((time.monotonic(), uri, data))


async def test_backup_under_load_restores_every_acknowledged_event(tmp_path: Path) -> None:
    async with running_server(tmp_path / "live") as srv:
        owner = await new_user(srv, "owner")
        room_id = await owner.create_room(name="family", preset="public_chat")
        senders = [await new_user(srv, "sender") for _ in range(SENDERS)]
        for user in senders:
            await user.call("POST", f"/join/{room_id}", {})
        first_media = os.urandom(100_000)
        first_uri = await upload(srv.client, {"Authorization": f"Bearer {owner.token}"}, first_media)

        acked: list[tuple[float, str]] = []
        uploaded: list[tuple[float, str, bytes]] = []
        stop = asyncio.Event()
        load = [asyncio.create_task(_send_until(u, room_id, stop, acked)) for u in senders]
        load.append(asyncio.create_task(_upload_until(owner, stop, uploaded)))
        while len(acked) < 50:  # the backup starts in the middle of the traffic
            await asyncio.sleep(0.01)
        started = time.monotonic()
        summary = await asyncio.to_thread(make_backup, srv.config, tmp_path / "backup")
        finished = time.monotonic()
        await asyncio.sleep(0.2)
        stop.set()
        await asyncio.gather(*load)
        members_live = (await owner.call("GET", f"/rooms/{room_id}/joined_members")).json()

    before = [event_id for ts, event_id in acked if ts < started]
    during = [event_id for ts, event_id in acked if started <= ts < finished]
    assert len(before) >= 50 and summary.media_files >= 1
    assert integrity_problems(summary.path / "homeserver.db") == []

    restored = make_config(tmp_path / "restored")
    restore_backup(summary.path, restored)
    assert integrity_problems(restored.database_path) == []
    async with running_server(tmp_path / "restored") as back:
        assert back.key.key_id == srv.key.key_id and back.key.verify_key == srv.key.verify_key
        owner_back = User(back.client, owner.user_id, owner.token, owner.device_id)
        for event_id in before:
            resp = await owner_back.call("GET", f"/rooms/{room_id}/event/{event_id}")
            assert resp.json()["event_id"] == event_id
        present_during = 0
        for event_id in during:
            resp = await owner_back.call("GET", f"/rooms/{room_id}/event/{event_id}", expect=None)
            assert resp.status_code in (200, 404), resp.text
            present_during += resp.status_code == 200
        # State: everyone who had joined before the backup is a member of the restored room.
        members = (await owner_back.call("GET", f"/rooms/{room_id}/joined_members")).json()
        assert members["joined"].keys() == members_live["joined"].keys()
        # Accounts: passwords and tokens came back with the database.
        assert await _login(back, senders[3].user_id) == 200
        # Media uploaded before the backup: the same bytes.
        resp = await owner_back.call("GET", f"{AUTHED}/download/{mxc_parts(first_uri)}")
        assert resp.content == first_media
        for ts, uri, data in uploaded:
            if ts < started:
                resp = await owner_back.call("GET", f"{AUTHED}/download/{mxc_parts(uri)}")
                assert resp.content == data
        # The restored server carries on from there.
        await owner_back.send(room_id, "after the restore")
    print(f"backup: {len(before)} events before it, {present_during}/{len(during)} during it kept")


async def _small_backup(tmp_path: Path) -> tuple[Path, str]:
    """A finished backup of a small server with one user (and that user's id)."""
    async with running_server(tmp_path / "source") as srv:
        user = await new_user(srv, "solo")
        await user.create_room(name="r")
        return (await asyncio.to_thread(make_backup, srv.config, tmp_path / "b")).path, user.user_id


async def _login(srv: RunningServer, user_id: str) -> int:
    resp = await srv.client.post(
        f"{V3}/login",
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user_id},
            "password": PASSWORD,
        },
    )
    return resp.status_code


async def test_restore_is_refused_over_a_running_server(tmp_path: Path) -> None:
    backup, _ = await _small_backup(tmp_path)
    async with running_server(tmp_path / "live") as srv:
        with pytest.raises(BackupError, match="a server is running on .*stop it"):
            restore_backup(backup, srv.config, force=True)
        # Nothing was touched: the server still serves its own users.
        user = await new_user(srv, "still")
        await user.create_room()


async def test_restore_over_existing_data_needs_force(tmp_path: Path) -> None:
    backup, backed_up_user = await _small_backup(tmp_path)
    async with running_server(tmp_path / "old") as old:
        old_user = (await new_user(old, "old")).user_id
    # `old` is stopped now: its data directory is not live, but it is not empty either.
    target = make_config(tmp_path / "old")
    with pytest.raises(BackupError, match=r"homeserver\.db already exists.*--force"):
        restore_backup(backup, target)
    restore_backup(backup, target, force=True)
    assert not target.database_path.with_name("homeserver.db-wal").exists()
    async with running_server(tmp_path / "old") as srv:
        # The accounts are the backup's now, not the old server's.
        assert await _login(srv, backed_up_user) == 200
        assert await _login(srv, old_user) == 403


async def test_damaged_or_newer_backups_are_refused(tmp_path: Path) -> None:
    backup, _ = await _small_backup(tmp_path)
    db = backup / "homeserver.db"
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO schema_version (version, name, applied_ts) VALUES (9999, 'future', 0)")
    conn.commit()
    conn.close()
    with pytest.raises(BackupError, match="made by a newer dendrite-lite .*schema 9999"):
        restore_backup(backup, make_config(tmp_path / "a"))

    data = bytearray(db.read_bytes())
    data[4096 : 4096 + 512] = b"\xff" * 512  # a damaged page
    db.write_bytes(bytes(data))
    with pytest.raises(BackupError, match="damaged|not a database|malformed"):
        restore_backup(backup, make_config(tmp_path / "b2"))
    assert not (tmp_path / "b2" / "homeserver.db").exists()

    (backup / "manifest.json").unlink()
    with pytest.raises(BackupError, match="not a dendrite-lite backup"):
        restore_backup(backup, make_config(tmp_path / "c"))


async def test_backup_refuses_an_existing_destination(tmp_path: Path) -> None:
    async with running_server(tmp_path / "live") as srv:
        (tmp_path / "taken").mkdir()
        with pytest.raises(BackupError, match="already exists"):
            make_backup(srv.config, tmp_path / "taken")


async def test_scheduled_backups_keep_the_newest(tmp_path: Path) -> None:
    directory = tmp_path / "scheduled"
    # 0.0003 h is about one second.
    overrides = {"backup.directory": directory, "backup.interval_hours": 0.0003, "backup.keep": 2}
    async with running_server(tmp_path / "live", overrides) as srv:
        user = await new_user(srv, "sched")
        room_id = await user.create_room()
        event_id = await user.send(room_id, "in every backup")
        deadline = time.monotonic() + 20
        made: set[str] = set()
        while time.monotonic() < deadline and len(made) < 3:
            made |= {p.name for p in directory.glob(f"{SCHEDULED_PREFIX}*")} if directory.exists() else set()
            await asyncio.sleep(0.1)
        assert len(made) >= 3, made
        await asyncio.sleep(0.3)
    kept = sorted(p for p in directory.iterdir() if p.name.startswith(SCHEDULED_PREFIX))
    assert len(kept) == 2 and all((p / "manifest.json").is_file() for p in kept)
    assert not list(directory.glob("*.partial"))
    restored = make_config(tmp_path / "restored")
    restore_backup(kept[-1], restored)
    async with running_server(tmp_path / "restored") as back:
        owner = User(back.client, user.user_id, user.token, user.device_id)
        resp = await owner.call("GET", f"/rooms/{room_id}/event/{event_id}")
        assert resp.json()["content"]["body"] == "in every backup"
