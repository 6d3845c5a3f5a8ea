"""synadm (the Synapse admin CLI from PyPI) drives our media admin API as a real client: `media
list` by user and by room, `media quarantine`/`unquarantine`/`protect`, `media delete` by id and
by age and size, `media purge`, and `version`; each checked against what the server then serves.
synadm has no commands for destinations, event reports or background updates: its `raw` command
(synadm's own URL building and authentication) reaches those."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dendrite_lite import __version__
from tests.conftest import SERVER_NAME, RunningServer
from tests.integration.account_helpers import auth_header, running_server
from tests.integration.admin_room_helpers import V1, admin_call
from tests.integration.media_helpers import AUTHED, mxc_parts, upload
from tests.integration.room_helpers import User, new_user
from tests.interop.synadm_runner import Synadm

UPDATES = "v1/background_updates"


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    async with running_server(
        tmp_path_factory.mktemp("synadm_media"), {"media.freeze_unauthenticated": False}
    ) as s:
        yield s



async def status(srv: RunningServer, uri: str, user: User) -> int:
    resp = await srv.client.get(
        f"{AUTHED}/download/{mxc_parts(uri)}", headers=auth_header(user.token)
    )
    return resp.status_code


def media_id(uri: str) -> str:
    return uri.rsplit("/", 1)[1]


async def test_version(synadm: Synadm) -> None:
    version = await synadm.ok("version")
    assert (
        version["server_version"] == __version__
        and version["server"] == "dendrite-lite"
    )


async def test_list_and_quarantine(srv: RunningServer, synadm: Synadm) -> None:
    alice = await new_user(srv, "alice")
    h = auth_header(alice.token)
    photo = await upload(srv.client, h, b"a photo", "image/png", "photo.png")
    sticker = await upload(srv.client, h, b"a sticker", "image/png", "sticker.png")
    room = await alice.create_room()
    for n, uri in enumerate((photo, sticker)):
        await alice.call(
            "PUT",
            f"/rooms/{room}/send/m.room.message/q{n}",
            {"msgtype": "m.image", "body": "img", "url": uri},
        )

    listed = await synadm.ok(
        "media", "list", "-u", alice.user_id, "--ts", "-s", "upload_name"
    )
    assert [m["upload_name"] for m in listed["media"]] == ["photo.png", "sticker.png"]
    assert listed["total"] == 2 and isinstance(listed["media"][0]["created_ts"], int)
    assert await synadm.ok("media", "list", "-r", room) == {
        "local": [photo, sticker],
        "remote": [],
    }

    # One file, by id (synadm fills in our server name) and by mxc:// URI.
    assert await synadm.ok("media", "quarantine", "-i", media_id(photo)) == {}
    assert await status(srv, photo, alice) == 404
    assert await synadm.ok("media", "unquarantine", "-U", photo) == {}
    assert await status(srv, photo, alice) == 200

    # A whole room, except what is protected.
    assert await synadm.ok("media", "protect", media_id(sticker)) == {}
    assert await synadm.ok("media", "quarantine", "-r", room) == {"num_quarantined": 1}
    assert [await status(srv, u, alice) for u in (photo, sticker)] == [404, 200]

    bob = await new_user(srv, "bob")
    bobs = await upload(srv.client, auth_header(bob.token), b"bob's file", "text/plain")
    assert await synadm.ok("media", "quarantine", "-u", bob.user_id) == {
        "num_quarantined": 1
    }
    assert await status(srv, bobs, bob) == 404


async def test_delete_and_purge(srv: RunningServer, synadm: Synadm) -> None:
    carol = await new_user(srv, "carol")
    h = auth_header(carol.token)
    one = await upload(srv.client, h, b"carol's first", "text/plain")
    big = await upload(srv.client, h, b"x" * 3000, "text/plain")
    small = await upload(srv.client, h, b"tiny", "text/plain")

    deleted = await synadm.ok("media", "delete", "-i", media_id(one))
    assert deleted == {"deleted_media": [media_id(one)], "total": 1}
    assert await status(srv, one, carol) == 404

    future = str(int(time.time() * 1000) + 60_000)
    by_size = await synadm.ok("media", "delete", "-t", future, "--kib", "2")
    assert (
        media_id(big) in by_size["deleted_media"]
        and media_id(small) not in by_size["deleted_media"]
    )
    assert [await status(srv, u, carol) for u in (big, small)] == [404, 200]

    assert await synadm.ok("media", "purge", "-t", future) == {
        "deleted": 0
    }  # nothing cached


async def test_raw_reaches_destinations_reports_and_background_updates(
    synadm: Synadm,
) -> None:
    assert await synadm.ok("raw", "v1/federation/destinations") == {
        "destinations": [],
        "total": 0,
    }
    missing = await synadm.ok("raw", "v1/federation/destinations/nowhere.example")
    assert missing["errcode"] == "M_NOT_FOUND"
    assert (await synadm.ok("raw", "v1/event_reports"))["total"] == 0
    assert (await synadm.ok("raw", "v1/event_reports/1"))["errcode"] == "M_NOT_FOUND"
    status_ = await synadm.ok("raw", f"{UPDATES}/status")
    assert status_ == {"enabled": True, "current_updates": {}}
    for enabled in (False, True):
        body = json.dumps({"enabled": enabled})
        switched = await synadm.ok(
            "raw", f"{UPDATES}/enabled", "-m", "post", "-d", body
        )
        assert switched == {"enabled": enabled}


async def test_over_the_admin_socket_without_a_token(
    srv: RunningServer, admin: User, tmp_path: Path
) -> None:
    """Opening the admin socket is the authentication: a quarantine from there names no user,
    so the server stands in as who quarantined it."""
    dave = await new_user(srv, "dave")
    uri = await upload(
        srv.client, auth_header(dave.token), b"dave's file", "text/plain"
    )
    over_socket = Synadm.for_server(
        tmp_path,
        str(srv.config.admin_socket_path),
        "no-token-needed",
        server_name=SERVER_NAME,
        protocol="unix",
    )
    assert (await over_socket.ok("version"))["server_version"] == __version__
    assert await over_socket.ok("media", "quarantine", "-U", uri) == {}
    assert await status(srv, uri, dave) == 404
    server_name, mid = mxc_parts(uri).split("/")
    info = await admin_call(admin, "GET", f"{V1}/media/{server_name}/{mid}")
    assert info.json()["media_info"]["quarantined"] is True
    assert info.json()["media_info"]["quarantined_by"] == "dendrite-lite"
