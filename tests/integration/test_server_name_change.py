"""A database serves one server name for life: a start (and `config check`) under another
server.server_name is refused, naming both (issue 11 item 9)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dendrite_lite.cli.main import app
from dendrite_lite.server import StartupError, serve
from tests.conftest import SERVER_NAME, make_config
from tests.integration.account_helpers import register, running_server

runner = CliRunner()


def config_check(tmp_path: Path, data_dir: Path, server_name: str):
    path = tmp_path / f"{server_name}.toml"
    path.write_text(f'[server]\nserver_name = "{server_name}"\ndata_dir = "{data_dir.as_posix()}"\n')
    return runner.invoke(app, ["config", "check", "--config", str(path)],
                         env={"DENDRITE_LITE_CONFIG": None})


async def _start_fails(data_dir: Path, server_name: str) -> str:
    config = make_config(data_dir, {"server.server_name": server_name})
    with pytest.raises(StartupError) as info:
        await serve(config, shutdown_trigger=asyncio.Event().wait)
    return str(info.value)


@pytest.mark.parametrize("with_account", [True, False])
async def test_start_under_another_name_is_refused(tmp_path: Path, with_account: bool) -> None:
    data_dir = tmp_path / "data"
    async with running_server(data_dir) as srv:
        if with_account:
            await register(srv.client, "alice")
    message = await _start_fails(data_dir, "renamed.example")
    assert message.startswith(
        f'server.server_name is "renamed.example", but the database {data_dir / "homeserver.db"}'
        f' belongs to "{SERVER_NAME}".'
    )
    assert f'set server.server_name = "{SERVER_NAME}" again' in message

    result = await asyncio.to_thread(config_check, tmp_path, data_dir, "renamed.example")
    assert result.exit_code == 2
    assert result.stderr.startswith(f'error: server.server_name is "renamed.example", but the database')
    assert f'belongs to "{SERVER_NAME}"' in result.stderr
    ok = await asyncio.to_thread(config_check, tmp_path, data_dir, SERVER_NAME)
    assert ok.exit_code == 0, ok.output

    # The refusal changed nothing: the right name still starts.
    (data_dir / "signing.key").unlink()  # the test launcher writes a fresh key each start
    async with running_server(data_dir) as srv:
        assert (await srv.client.get("/_matrix/client/versions")).status_code == 200
