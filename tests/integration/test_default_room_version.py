"""server.default_room_version: the version of rooms whose /createRoom names none, and what
GET /capabilities offers as `m.room_versions.default` (issue 11 item 8)."""

from __future__ import annotations

import pytest

from tests.integration.account_helpers import running_server
from tests.integration.room_helpers import SERVER_NAME, new_user


@pytest.mark.parametrize("configured", [None, "10"])
async def test_new_rooms_and_capabilities_use_the_configured_version(
    tmp_path, configured: str | None
) -> None:
    overrides = {"server.default_room_version": configured} if configured else {}
    expected = configured or "12"  # not configured: today's default, the spec's advice
    async with running_server(tmp_path, overrides) as srv:
        alice = await new_user(srv, "alice")
        caps = (await alice.call("GET", "/capabilities")).json()["capabilities"]
        assert caps["m.room_versions"]["default"] == expected
        assert expected in caps["m.room_versions"]["available"]

        room_id = await alice.create_room()
        create = (await alice.state(room_id, "m.room.create")).json()
        assert create["room_version"] == expected
        # v10 room ids name their server; v12 ones are the create event's hash.
        assert room_id.endswith(f":{SERVER_NAME}") == (expected == "10")

        # A version the body names still wins over the default.
        explicit = await alice.create_room(room_version="11")
        assert (await alice.state(explicit, "m.room.create")).json()["room_version"] == "11"
