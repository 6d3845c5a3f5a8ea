"""matrix-nio (a real client library) and the media repository: one user uploads an avatar
with nio and sets it on their profile; another user's nio client finds it through the profile
and downloads it, and its thumbnail, through the authenticated media endpoints nio uses."""

from __future__ import annotations

import io

from nio import (  # type: ignore[import-untyped]
    MemoryDownloadResponse,
    ProfileGetAvatarResponse,
    ProfileSetAvatarResponse,
    ThumbnailResponse,
    UploadResponse,
)
from nio.api import ResizingMethod  # type: ignore[import-untyped]
from PIL import Image

from dendrite_lite.users.passwords import fast_hashing_for_tests
from tests.conftest import StartServer
from tests.interop.nio_helpers import (
    expect,
    nio_validation,  # noqa: F401  (an autouse fixture: every test here fails on nio's complaints)
    register_nio_user,
)
from tests.media_images import png


async def test_nio_avatar_upload_and_download_by_another_user(start_server: StartServer) -> None:
    with fast_hashing_for_tests():
        srv = await start_server({"registration.mode": "open", "ratelimit.enabled": False})
        url = srv.listening.client_url
        alice = await register_nio_user(url, "alice")
        bob = await register_nio_user(url, "bob")
    avatar = png(256, 256, (200, 30, 30, 255))
    try:
        uploaded, keys = await alice.client.upload(
            io.BytesIO(avatar), content_type="image/png", filename="avatar.png",
            filesize=len(avatar),
        )
        uploaded = expect(uploaded, UploadResponse)
        assert keys is None  # not encrypted
        assert uploaded.content_uri.startswith("mxc://test.localhost/")
        expect(await alice.client.set_avatar(uploaded.content_uri), ProfileSetAvatarResponse)

        profile = expect(await bob.client.get_avatar(alice.user_id), ProfileGetAvatarResponse)
        assert profile.avatar_url == uploaded.content_uri
        downloaded = expect(await bob.client.download(profile.avatar_url), MemoryDownloadResponse)
        assert downloaded.body == avatar
        assert downloaded.content_type == "image/png"
        assert downloaded.filename == "avatar.png"

        server_name, media_id = profile.avatar_url.removeprefix("mxc://").split("/")
        thumb = expect(
            await bob.client.thumbnail(server_name, media_id, 96, 96, ResizingMethod.crop),
            ThumbnailResponse,
        )
        assert thumb.content_type == "image/png"
        with Image.open(io.BytesIO(thumb.body)) as img:
            assert img.size == (96, 96)
            assert img.convert("RGBA").getpixel((48, 48)) == (200, 30, 30, 255)
    finally:
        await alice.client.close()
        await bob.client.close()
