"""Synapse-compatible media admin API (/_synapse/admin/v1 media, user media, room media, purge)
through a real server: shapes, paging, errcodes, and the effects on downloads."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from dendrite_lite.media.repository import MediaRow
from tests.conftest import SERVER_NAME, RunningServer
from tests.integration.account_helpers import (
    auth_header,
    running_server,
)
from tests.integration.admin_room_helpers import V1, admin_call, make_admin
from tests.integration.media_helpers import (
    AUTHED,
    content_files,
    media_service,
    mxc_parts,
    upload,
)
from tests.integration.room_helpers import User, new_user
from tests.media_images import png


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    async with running_server(
        tmp_path_factory.mktemp("admin_media"), {"media.freeze_unauthenticated": False}
    ) as s:
        yield s


@pytest.fixture(scope="module")
async def admin(srv: RunningServer) -> User:
    return await make_admin(srv)


async def _status(srv: RunningServer, uri: str, user: User) -> int:
    resp = await srv.client.get(
        f"{AUTHED}/download/{mxc_parts(uri)}", headers=auth_header(user.token)
    )
    return resp.status_code


async def _thumbnail_status(srv: RunningServer, uri: str, user: User) -> int:
    resp = await srv.client.get(
        f"{AUTHED}/thumbnail/{mxc_parts(uri)}",
        headers=auth_header(user.token),
        params={"width": 32, "height": 32, "method": "scale"},
    )
    return resp.status_code


def _media_id(uri: str) -> str:
    return uri.rsplit("/", 1)[1]


async def _error(resp: Any) -> tuple[int, str]:
    return resp.status_code, resp.json()["errcode"]


async def test_user_media_lists_pages_and_orders(
    srv: RunningServer, admin: User
) -> None:
    alice = await new_user(srv, "alice")
    h = auth_header(alice.token)
    uris = [
        await upload(srv.client, h, b"x" * size, "text/plain", f"f{size}.txt")
        for size in (30, 10, 20)
    ]
    path = f"{V1}/users/{alice.user_id}/media"
    first = await admin_call(admin, "GET", path, params={"limit": 2})
    body = first.json()
    assert body["total"] == 3 and body["next_token"] == 2
    # Newest first when neither order_by nor dir is given.
    assert [m["media_id"] for m in body["media"]] == [
        _media_id(uris[2]),
        _media_id(uris[1]),
    ]
    assert body["media"][0] == {
        "media_id": _media_id(uris[2]),
        "media_type": "text/plain",
        "media_length": 20,
        "upload_name": "f20.txt",
        "created_ts": body["media"][0]["created_ts"],
        "last_access_ts": None,
        "quarantined_by": None,
        "safe_from_quarantine": False,
        "authenticated": False,
        "quarantined": False,
    }
    rest = (await admin_call(admin, "GET", path, params={"from": 2})).json()
    assert [m["media_id"] for m in rest["media"]] == [_media_id(uris[0])]
    assert "next_token" not in rest
    by_size = (
        await admin_call(admin, "GET", path, params={"order_by": "media_length"})
    ).json()
    assert [m["media_length"] for m in by_size["media"]] == [10, 20, 30]
    by_size_b = (
        await admin_call(
            admin, "GET", path, params={"order_by": "media_length", "dir": "b"}
        )
    ).json()
    assert [m["media_length"] for m in by_size_b["media"]] == [30, 20, 10]


async def test_user_media_errors(srv: RunningServer, admin: User) -> None:
    bob = await new_user(srv, "bob")
    path = f"{V1}/users/{bob.user_id}/media"
    for params in (
        {"order_by": "colour"},
        {"dir": "sideways"},
        {"from": -1},
        {"limit": "x"},
        {"limit": "9" * 25},  # more than SQLite can take: refused, not a 500
    ):
        resp = await admin_call(admin, "GET", path, params=params, expect=None)
        assert await _error(resp) == (400, "M_INVALID_PARAM"), params
    unknown = await admin_call(
        admin, "GET", f"{V1}/users/@ghost:{SERVER_NAME}/media", expect=None
    )
    assert await _error(unknown) == (404, "M_NOT_FOUND")
    remote = await admin_call(
        admin, "GET", f"{V1}/users/@bob:elsewhere.example/media", expect=None
    )
    assert await _error(remote) == (400, "M_INVALID_PARAM")
    denied = await admin_call(bob, "GET", path, expect=None)
    assert await _error(denied) == (403, "M_FORBIDDEN")
    assert (await admin_call(admin, "GET", path)).json() == {"media": [], "total": 0}


async def test_quarantine_by_id_hides_media_until_unquarantined(
    srv: RunningServer, admin: User
) -> None:
    carol = await new_user(srv, "carol")
    uri = await upload(
        srv.client, auth_header(carol.token), png(64, 64), "image/png", "a.png"
    )
    server_name, media_id = mxc_parts(uri).split("/")
    assert await _status(srv, uri, carol) == 200
    await admin_call(
        admin, "POST", f"{V1}/media/quarantine/{server_name}/{media_id}", {}
    )
    assert await _status(srv, uri, carol) == 404
    assert await _thumbnail_status(srv, uri, carol) == 404
    # Only a server admin may still fetch it, and only on purpose.
    bypass = {"admin_unsafely_bypass_quarantine": "true"}
    url = f"{AUTHED}/download/{mxc_parts(uri)}"
    as_admin = await srv.client.get(
        url, params=bypass, headers=auth_header(admin.token)
    )
    assert as_admin.status_code == 200 and as_admin.content == png(64, 64)
    as_carol = await srv.client.get(
        url, params=bypass, headers=auth_header(carol.token)
    )
    assert as_carol.status_code == 404
    assert await _status(srv, uri, admin) == 404
    info = (
        await admin_call(admin, "GET", f"{V1}/media/{server_name}/{media_id}")
    ).json()["media_info"]
    assert (
        info["quarantined_by"] == admin.user_id and info["media_origin"] == SERVER_NAME
    )
    assert info["user_id"] == carol.user_id and info["media_type"] == "image/png"
    assert len(info["sha256"]) == 64 and info["safe_from_quarantine"] is False
    await admin_call(
        admin, "POST", f"{V1}/media/unquarantine/{server_name}/{media_id}", {}
    )
    assert await _status(srv, uri, carol) == 200
    assert await _thumbnail_status(srv, uri, carol) == 200
    info = (
        await admin_call(admin, "GET", f"{V1}/media/{server_name}/{media_id}")
    ).json()["media_info"]
    assert info["quarantined_by"] is None
    missing = await admin_call(
        admin, "POST", f"{V1}/media/quarantine/{server_name}/nothere", {}, expect=None
    )
    assert await _error(missing) == (404, "M_NOT_FOUND")
    no_info = await admin_call(
        admin, "GET", f"{V1}/media/{server_name}/nothere", expect=None
    )
    assert await _error(no_info) == (404, "M_NOT_FOUND")


async def test_room_media_quarantine_skips_protected_media(
    srv: RunningServer, admin: User
) -> None:
    dave = await new_user(srv, "dave")
    h = auth_header(dave.token)
    image = await upload(srv.client, h, png(40, 40), "image/png", "i.png")
    thumb = await upload(srv.client, h, png(8, 8), "image/png", "t.png")
    sticker = await upload(
        srv.client, h, png(16, 16, (1, 2, 3, 255)), "image/png", "s.png"
    )
    elsewhere = await upload(srv.client, h, b"not in the room", "text/plain")
    room = await dave.create_room()
    await dave.call(
        "PUT",
        f"/rooms/{room}/send/m.room.message/m1",
        {
            "msgtype": "m.image",
            "body": "i.png",
            "url": image,
            "info": {"thumbnail_url": thumb},
        },
    )
    await dave.call(
        "PUT", f"/rooms/{room}/send/m.sticker/m2", {"body": "s", "url": sticker}
    )
    await dave.call(
        "PUT",
        f"/rooms/{room}/send/m.room.message/m3",
        {"msgtype": "m.image", "body": "remote", "url": "mxc://elsewhere.example/abc"},
    )
    listed = (await admin_call(admin, "GET", f"{V1}/room/{room}/media")).json()
    assert listed == {
        "local": [image, thumb, sticker],
        "remote": ["mxc://elsewhere.example/abc"],
    }

    await admin_call(admin, "POST", f"{V1}/media/protect/{_media_id(sticker)}", {})
    done = (
        await admin_call(admin, "POST", f"{V1}/room/{room}/media/quarantine", {})
    ).json()
    assert done == {
        "num_quarantined": 2
    }  # the image and its thumbnail; the remote one is not cached
    assert [
        await _status(srv, u, dave) for u in (image, thumb, sticker, elsewhere)
    ] == [404, 404, 200, 200]
    # Protected media is not quarantined by id either, until unprotected.
    server_name, sticker_id = mxc_parts(sticker).split("/")
    await admin_call(
        admin, "POST", f"{V1}/media/quarantine/{server_name}/{sticker_id}", {}
    )
    assert await _status(srv, sticker, dave) == 200
    await admin_call(admin, "POST", f"{V1}/media/unprotect/{sticker_id}", {})
    await admin_call(
        admin, "POST", f"{V1}/media/quarantine/{server_name}/{sticker_id}", {}
    )
    assert await _status(srv, sticker, dave) == 404

    unknown = await admin_call(
        admin, "GET", f"{V1}/room/!nope:{SERVER_NAME}/media", expect=None
    )
    assert await _error(unknown) == (404, "M_NOT_FOUND")
    no_media = await admin_call(
        admin, "POST", f"{V1}/media/protect/nothere", {}, expect=None
    )
    assert await _error(no_media) == (404, "M_NOT_FOUND")


async def test_user_media_quarantine(srv: RunningServer, admin: User) -> None:
    erin = await new_user(srv, "erin")
    h = auth_header(erin.token)
    uris = [
        await upload(srv.client, h, f"erin {i}".encode(), "text/plain")
        for i in range(2)
    ]
    done = (
        await admin_call(
            admin, "POST", f"{V1}/user/{erin.user_id}/media/quarantine", {}
        )
    ).json()
    assert done == {"num_quarantined": 2}
    assert [await _status(srv, u, erin) for u in uris] == [404, 404]
    listed = (
        await admin_call(admin, "GET", f"{V1}/users/{erin.user_id}/media")
    ).json()["media"]
    assert {m["quarantined_by"] for m in listed} == {admin.user_id}


async def test_delete_media_by_id_and_by_user(srv: RunningServer, admin: User) -> None:
    frank = await new_user(srv, "frank")
    h = auth_header(frank.token)
    content = b"frank's only copy " + str(time.time()).encode()
    uri = await upload(srv.client, h, content, "text/plain")
    server_name, media_id = mxc_parts(uri).split("/")
    files_before = len(content_files(srv))
    deleted = (
        await admin_call(admin, "DELETE", f"{V1}/media/{server_name}/{media_id}")
    ).json()
    assert deleted == {"deleted_media": [media_id], "total": 1}
    assert await _status(srv, uri, frank) == 404
    assert (
        len(content_files(srv)) == files_before - 1
    )  # the file went with its only row
    again = await admin_call(
        admin, "DELETE", f"{V1}/media/{server_name}/{media_id}", expect=None
    )
    assert await _error(again) == (404, "M_NOT_FOUND")
    remote = await admin_call(
        admin, "DELETE", f"{V1}/media/elsewhere.example/abc", expect=None
    )
    assert await _error(remote) == (400, "M_INVALID_PARAM")

    kept = [await upload(srv.client, h, b"k" * n, "text/plain") for n in (1, 5, 3)]
    gone = (
        await admin_call(
            admin,
            "DELETE",
            f"{V1}/users/{frank.user_id}/media",
            params={"order_by": "media_length", "dir": "b", "limit": 2},
        )
    ).json()
    assert gone == {
        "deleted_media": [_media_id(kept[1]), _media_id(kept[2])],
        "total": 2,
    }
    left = (await admin_call(admin, "GET", f"{V1}/users/{frank.user_id}/media")).json()
    assert [m["media_id"] for m in left["media"]] == [_media_id(kept[0])]


async def test_delete_old_local_media_keeps_avatars_and_protected(
    srv: RunningServer, admin: User
) -> None:
    gina = await new_user(srv, "gina")
    h = auth_header(gina.token)
    avatar = await upload(srv.client, h, b"gina's face" * 10, "image/png")
    protected = await upload(srv.client, h, b"gina's sticker" * 10, "image/png")
    small = await upload(srv.client, h, b"s", "text/plain")
    big = await upload(srv.client, h, b"b" * 500, "text/plain")
    await gina.call(
        "PUT", f"/profile/{gina.user_id}/avatar_url", {"avatar_url": avatar}
    )
    await admin_call(admin, "POST", f"{V1}/media/protect/{_media_id(protected)}", {})
    future = int(time.time() * 1000) + 60_000
    deleted = (
        await admin_call(
            admin,
            "POST",
            f"{V1}/media/delete",
            {},
            params={"before_ts": future, "size_gt": 50},
        )
    ).json()["deleted_media"]
    ours = {_media_id(u) for u in (avatar, protected, small, big)}
    assert ours & set(deleted) == {_media_id(big)}
    assert (
        await _status(srv, small, gina) == 200
        and await _status(srv, avatar, gina) == 200
    )
    deleted = (
        await admin_call(
            admin,
            "POST",
            f"{V1}/media/delete",
            {},
            params={"before_ts": future, "size_gt": 50, "keep_profiles": "false"},
        )
    ).json()
    assert _media_id(avatar) in deleted["deleted_media"] and deleted["total"] == len(
        deleted["deleted_media"]
    )
    assert await _status(srv, protected, gina) == 200
    missing = await admin_call(admin, "POST", f"{V1}/media/delete", {}, expect=None)
    assert await _error(missing) == (400, "M_MISSING_PARAM")


async def test_purge_media_cache_deletes_old_remote_copies(
    srv: RunningServer, admin: User
) -> None:
    repo = media_service(srv).repo

    async def one(data: bytes) -> AsyncIterator[bytes]:
        yield data

    row = MediaRow(
        "remote.example",
        "cached1",
        None,
        None,
        "text/plain",
        None,
        None,
        created_ts=1000,
    )
    await repo.store(row, one(b"a remote copy"), max_bytes=100)
    info = await admin_call(admin, "GET", f"{V1}/media/remote.example/cached1")
    assert info.json()["media_info"]["media_origin"] == "remote.example"
    assert (
        await admin_call(
            admin, "POST", f"{V1}/purge_media_cache", {}, params={"before_ts": 500}
        )
    ).json() == {"deleted": 0}
    purged = await admin_call(
        admin, "POST", f"{V1}/purge_media_cache", {}, params={"before_ts": 2000}
    )
    assert purged.json()["deleted"] >= 1
    gone = await admin_call(
        admin, "GET", f"{V1}/media/remote.example/cached1", expect=None
    )
    assert await _error(gone) == (404, "M_NOT_FOUND")
    missing = await admin_call(
        admin, "POST", f"{V1}/purge_media_cache", {}, expect=None
    )
    assert await _error(missing) == (400, "M_MISSING_PARAM")


async def test_quarantine_follows_the_content(srv: RunningServer, admin: User) -> None:
    hank = await new_user(srv, "hank")
    h = auth_header(hank.token)
    content = b"the same bytes " + str(time.time()).encode()
    first, second, kept = [
        await upload(srv.client, h, content, "text/plain") for _ in range(3)
    ]
    await admin_call(admin, "POST", f"{V1}/media/protect/{_media_id(kept)}", {})
    server_name = mxc_parts(first).split("/")[0]
    await admin_call(
        admin, "POST", f"{V1}/media/quarantine/{server_name}/{_media_id(first)}", {}
    )
    assert [await _status(srv, u, hank) for u in (first, second, kept)] == [
        404,
        404,
        200,
    ]
    # Uploading it again under a new id does not serve it again.
    again = await upload(srv.client, h, content, "text/plain")
    assert await _status(srv, again, hank) == 404
    created = (await srv.client.post("/_matrix/media/v1/create", headers=h)).json()[
        "content_uri"
    ]
    put = await srv.client.put(
        f"/_matrix/media/v3/upload/{mxc_parts(created)}",
        content=content,
        headers={**h, "Content-Type": "text/plain"},
    )
    assert put.status_code == 200 and await _status(srv, created, hank) == 404
    other = await upload(srv.client, h, content + b"!", "text/plain")
    assert await _status(srv, other, hank) == 200
    # Unquarantined: every copy is served again, and so is the next upload.
    await admin_call(
        admin, "POST", f"{V1}/media/unquarantine/{server_name}/{_media_id(second)}", {}
    )
    assert [await _status(srv, u, hank) for u in (first, second, again)] == [
        200,
        200,
        200,
    ]
    assert (
        await _status(srv, await upload(srv.client, h, content, "text/plain"), hank)
        == 200
    )


async def test_users_media_usage_statistics(srv: RunningServer, admin: User) -> None:
    stats = f"{V1}/statistics/users/media"
    ivy, jon = await new_user(srv, "ivy"), await new_user(srv, "jon")
    await ivy.call(
        "PUT", f"/profile/{ivy.user_id}/displayname", {"displayname": "Ivy Green"}
    )
    before = int(time.time() * 1000)
    for size in (10, 20):
        await upload(srv.client, auth_header(ivy.token), b"i" * size, "text/plain")
    await upload(srv.client, auth_header(jon.token), b"j" * 100, "text/plain")

    def mine(body: Any) -> list[tuple[str, Any, int, int]]:
        return [
            (u["user_id"], u["displayname"], u["media_count"], u["media_length"])
            for u in body["users"]
            if u["user_id"] in (ivy.user_id, jon.user_id)
        ]

    since = (await admin_call(admin, "GET", stats, params={"from_ts": before})).json()
    assert mine(since) == [
        (ivy.user_id, "Ivy Green", 2, 30),
        (jon.user_id, jon.user_id.split(":")[0][1:], 1, 100),
    ]
    assert since["total"] == 2  # only uploads since `before` count, so only these two
    by_size = (
        await admin_call(
            admin,
            "GET",
            stats,
            params={"from_ts": before, "order_by": "media_length", "dir": "b"},
        )
    ).json()
    assert [u["user_id"] for u in by_size["users"]] == [jon.user_id, ivy.user_id]
    found = (
        await admin_call(admin, "GET", stats, params={"search_term": "ivy gr"})
    ).json()
    assert mine(found) == [(ivy.user_id, "Ivy Green", 2, 30)] and found["total"] == 1
    page = (
        await admin_call(admin, "GET", stats, params={"from_ts": before, "limit": 1})
    ).json()
    assert (len(page["users"]), page["next_token"], page["total"]) == (1, 1, 2)
    none = (
        await admin_call(admin, "GET", stats, params={"until_ts": before - 1})
    ).json()
    assert mine(none) == []
    for params in (
        {"order_by": "colour"},
        {"from_ts": 5, "until_ts": 4},
        {"from_ts": -1},
    ):
        resp = await admin_call(admin, "GET", stats, params=params, expect=None)
        assert await _error(resp) == (400, "M_INVALID_PARAM"), params
