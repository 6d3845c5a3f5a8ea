"""MSC3202 device lists for an application service, against the fake AS: `left` names users
(local or remote) who no longer share a room with the AS's users, and device list changes
reach the AS through its cursor into the device list stream: after an AS outage, a restart, a
SIGKILL right after the change, or a crash between a change's commit and its wake-up; a new AS
starts at the stream's position then."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import sys
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import httpx
import pytest

from tests.conftest import RunningServer
from tests.integration.account_helpers import login, running_server
from tests.integration.appservice_fake import FakeAppservice, fake_appservice
from tests.integration.federation_helpers import RemoteServer, join_remote_user, pdu
from tests.integration.room_helpers import User, new_user
from tests.integration.test_appservice_transactions import (
    Bridge,
    _shared_room,
    restartable_bridge,
    running_bridge,
)

KEY = "org.matrix.msc3202.device_lists"


@pytest.fixture(scope="module")
async def bridge(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Bridge]:
    async with running_bridge(tmp_path_factory) as bridge:
        yield bridge


def _listed(fake: FakeAppservice, field: str, user_id: str) -> list[dict[str, list[str]]]:
    return [t.body[KEY] for t in fake.transactions if user_id in t.body.get(KEY, {}).get(field, [])]


async def _until_listed(fake: FakeAppservice, field: str, user_id: str, timeout: float = 10.0) -> dict[str, list[str]]:
    deadline = asyncio.get_running_loop().time() + timeout
    while not (found := _listed(fake, field, user_id)):
        assert asyncio.get_running_loop().time() < deadline, f"{user_id} never in device_lists.{field}"
        await asyncio.sleep(0.05)
    return found[0]


async def test_a_local_member_leaving_the_only_shared_room_is_left(bridge: Bridge) -> None:
    owner = await new_user(bridge.srv, "dlowner")
    room, _ = await _shared_room(bridge, owner, "relay_dl1")
    leaver, stayer = await new_user(bridge.srv, "dlleaver"), await new_user(bridge.srv, "dlstayer")
    await _shared_room(bridge, stayer, "relay_dl2")  # stayer shares a second room
    for user in (leaver, stayer):
        await user.call("POST", f"/rooms/{room}/join", {})
    await login(bridge.srv.client, leaver.user_id.split(":")[0][1:])  # a change, before leaving
    await _until_listed(bridge.fake, "changed", leaver.user_id)
    await stayer.call("POST", f"/rooms/{room}/leave", {})
    await leaver.call("POST", f"/rooms/{room}/leave", {})
    lists = await _until_listed(bridge.fake, "left", leaver.user_id)
    assert leaver.user_id not in lists["changed"]
    # Still sharing `other` with the AS's user: not left (its leave came first, in order).
    assert not _listed(bridge.fake, "left", stayer.user_id)
    # Banned from the only shared room: left too.
    banned = await new_user(bridge.srv, "dlbanned")
    await banned.call("POST", f"/rooms/{room}/join", {})
    await owner.call("POST", f"/rooms/{room}/ban", {"user_id": banned.user_id})
    await _until_listed(bridge.fake, "left", banned.user_id)


async def test_the_as_user_leaving_makes_its_room_mates_left(bridge: Bridge) -> None:
    owner = await new_user(bridge.srv, "dlmate")
    room, ghost = await _shared_room(bridge, owner, "relay_dl3")
    keeper = await new_user(bridge.srv, "dlkeeper")  # shares another room with the bridge bot
    await keeper.call("POST", f"/rooms/{room}/join", {})
    await _shared_room(bridge, keeper, "relay_dl4")
    assert (await bridge.call("POST", f"/rooms/{room}/leave", {}, user_id=ghost)).status_code == 200
    await _until_listed(bridge.fake, "left", owner.user_id)
    assert not _listed(bridge.fake, "left", keeper.user_id)
    assert not _listed(bridge.fake, "left", ghost)


async def test_a_remote_member_leaving_over_federation_is_left(bridge: Bridge) -> None:
    owner = await new_user(bridge.srv, "dlfed")
    room, _ = await _shared_room(bridge, owner, "relay_dl5")
    remote = await RemoteServer.trusted_by(bridge.srv)
    bob = remote.user("bob")
    await join_remote_user(bridge.srv, room, bob)
    leave = await remote.build(bridge.srv, room, bob, "m.room.member", {"membership": "leave"}, bob)
    resp = await remote.send(bridge.srv, [pdu(leave)])
    assert resp.status_code == 200, resp.text
    assert resp.json()["pdus"][leave.event_id] == {}
    await _until_listed(bridge.fake, "left", bob)


async def test_a_device_list_change_survives_an_outage_and_a_restart(tmp_path: Path) -> None:
    port, hs_token, as_token, overrides = restartable_bridge(tmp_path)
    data = tmp_path / "data"
    async with fake_appservice(port, hs_token) as fake, running_server(data, overrides) as srv:
        user = await new_user(srv, "dlrestart")
        await _shared_room(Bridge(srv, fake, as_token), user, "relay_dlr")
        await fake.event_of_type("m.room.member")
    # The AS is gone; the user logs in a new device and the server restarts.
    async with running_server(data, overrides) as srv:
        assert (await login(srv.client, user.user_id.split(":")[0][1:])).status_code == 200
        await asyncio.sleep(0.5)  # failed attempts
    async with fake_appservice(port, hs_token) as fake2, running_server(data, overrides):
        await _until_listed(fake2, "changed", user.user_id)


async def test_a_change_whose_wake_up_never_ran_reaches_the_as(tmp_path: Path) -> None:
    """A change committed whose post-commit work never ran (the server died in between) is in
    the stream, which is what the AS's queue reads: it is delivered after the restart."""
    port, hs_token, as_token, overrides = restartable_bridge(tmp_path)
    data = tmp_path / "data"
    async with fake_appservice(port, hs_token) as fake, running_server(data, overrides) as srv:
        user = await new_user(srv, "dlcrash")
        await _shared_room(Bridge(srv, fake, as_token), user, "relay_dlc")
        await fake.event_of_type("m.room.member")
    with sqlite3.connect(data / "homeserver.db") as db:  # the commit, and nothing after it
        db.execute(
            "INSERT INTO device_list_changes (user_id, device_id) VALUES (?, 'CRASHED')",
            (user.user_id,),
        )
    async with fake_appservice(port, hs_token) as fake2, running_server(data, overrides):
        await _until_listed(fake2, "changed", user.user_id)


async def test_a_new_appservice_starts_at_the_current_stream_position(tmp_path: Path) -> None:
    """Changes from before the AS was registered are not sent to it."""
    port, hs_token, as_token, overrides = restartable_bridge(tmp_path)
    data = tmp_path / "data"
    async with running_server(data) as srv:  # no appservice yet
        early = await new_user(srv, "dlearly")  # registering is a device list change
        late = await new_user(srv, "dllate")
        assert (await login(srv.client, early.user_id.split(":")[0][1:])).status_code == 200
    async with fake_appservice(port, hs_token) as fake, running_server(data, overrides) as srv:
        early, late = (User(srv.client, u.user_id, u.token, u.device_id) for u in (early, late))
        room, _ = await _shared_room(Bridge(srv, fake, as_token), early, "relay_dlnew")
        await late.call("POST", f"/rooms/{room}/join", {})
        assert (await login(srv.client, late.user_id.split(":")[0][1:])).status_code == 200
        await _until_listed(fake, "changed", late.user_id)
        assert not _listed(fake, "changed", early.user_id)


# --- a real server process, killed with SIGKILL ---------------------------------------------------
RUN_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from dendrite_lite.config import (
        AppservicesConfig, Config, ListenConfig, RatelimitConfig, RegistrationConfig, ServerConfig,
    )
    from dendrite_lite.crypto.keys import new_server_key, write_signing_key
    from dendrite_lite.server import run
    from dendrite_lite.users.passwords import fast_hashing_for_tests

    data, registration = Path(sys.argv[1]), Path(sys.argv[2])
    if not (data / "signing.key").exists():
        write_signing_key(data / "signing.key", new_server_key())
    with fast_hashing_for_tests():
        run(Config(server=ServerConfig(server_name="test.localhost", data_dir=data),
                   listen=ListenConfig(client="127.0.0.1:0", federation=""),
                   registration=RegistrationConfig(mode="open"),
                   ratelimit=RatelimitConfig(enabled=False),
                   appservices=AppservicesConfig(registration_files=(registration,),
                                                 retry_initial_s=0.2, retry_max_s=0.5)))
    """
)


@dataclass
class _Process:
    """A server in a process of its own; `client` as RunningServer's, for the helpers."""

    proc: asyncio.subprocess.Process
    client: httpx.AsyncClient

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)


@asynccontextmanager
async def _server_process(data: Path, registration: Path) -> AsyncIterator[_Process]:
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", RUN_SCRIPT, str(data), str(registration),
        stderr=asyncio.subprocess.PIPE, env=env, cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.stderr is not None
    lines: list[str] = []
    try:
        while True:
            line = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode()
            assert line, "the server exited: " + "".join(lines)
            lines.append(line)
            match = re.search(r"client listener on (\S+)", line)
            if match:
                break

        async def drain() -> None:  # a full pipe would block the server's logging
            assert proc.stderr is not None
            while line := await proc.stderr.readline():
                lines.append(line.decode())

        draining = asyncio.create_task(drain())
        async with httpx.AsyncClient(base_url=match.group(1), timeout=10) as client:
            yield _Process(proc, client)
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 15)
        await draining
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_a_change_before_a_sigkill_reaches_the_as_after_the_restart(tmp_path: Path) -> None:
    """The AS is down; a user's new device and another user's leave of the only room shared
    with the AS's user are committed, then the server is killed with SIGKILL. After a restart,
    the AS coming back gets both: the change in `changed`, the leaver in `left`."""
    port, hs_token, as_token, overrides = restartable_bridge(tmp_path)
    [registration] = overrides["appservices.registration_files"]
    data = tmp_path / "data"
    data.mkdir()
    async with _server_process(data, registration) as srv:
        server = cast(RunningServer, srv)  # the helpers use only its client
        async with fake_appservice(port, hs_token) as fake:
            changer = await new_user(server, "dlkill")
            leaver = await new_user(server, "dlkleave")
            room, _ = await _shared_room(Bridge(server, fake, as_token), changer, "relay_dlk")
            await leaver.call("POST", f"/rooms/{room}/join", {})
            await _until_member(fake, leaver.user_id)
        # The AS is down from here on.
        assert (await login(srv.client, changer.user_id.split(":")[0][1:])).status_code == 200
        await leaver.call("POST", f"/rooms/{room}/leave", {})
        srv.kill()
        assert await asyncio.wait_for(srv.proc.wait(), 10) == -signal.SIGKILL
    async with _server_process(data, registration) as srv:
        await asyncio.sleep(0.5)  # the first attempts fail: the AS is still down
        async with fake_appservice(port, hs_token) as fake:
            changed = await _until_listed(fake, "changed", changer.user_id)
            left = await _until_listed(fake, "left", leaver.user_id)
            assert leaver.user_id not in changed["changed"] and changer.user_id not in left["left"]


async def _until_member(fake: FakeAppservice, user_id: str, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not any(
        e["type"] == "m.room.member" and e.get("state_key") == user_id for e in fake.events()
    ):
        assert asyncio.get_running_loop().time() < deadline, f"no member event of {user_id}"
        await asyncio.sleep(0.05)
