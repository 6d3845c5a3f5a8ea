"""`dendrite-lite registration-token create|list|revoke`, against a real database file, and a
token made by the CLI used for a real registration over HTTP."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dendrite_lite.cli.main import app
from tests.conftest import SERVER_NAME
from tests.integration.account_helpers import PASSWORD, V3, running_server

runner = CliRunner()


def write_config(path: Path, data_dir: Path, server_name: str = "example.org", mode: str = "token") -> Path:
    path.write_text(
        f'[server]\nserver_name = "{server_name}"\ndata_dir = "{data_dir.as_posix()}"\n'
        f'[registration]\nmode = "{mode}"\n'
    )
    return path


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return write_config(tmp_path / "dendrite-lite.toml", tmp_path / "data")


def invoke(*args: str):
    return runner.invoke(app, ["registration-token", *args], env={"DENDRITE_LITE_CONFIG": None})


def rows(config_path: Path) -> dict[str, str]:
    result = invoke("list", "--config", str(config_path))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["TOKEN", "USES", "EXPIRES", "STATUS"]
    return {line.split()[0]: line for line in lines[1:]}


def test_create_prints_the_token_and_list_shows_it(config_path: Path) -> None:
    result = invoke("create", "--config", str(config_path))
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()  # only the token on stdout, for `TOKEN=$(...)`
    assert re.fullmatch(r"[A-Za-z0-9]{16}", token)
    assert "Created a registration token (0/unlimited used, never expires)" in result.stderr

    chosen = invoke(
        "create", "--token", "family-2026", "--uses", "2", "--expires-in", "7d",
        "--config", str(config_path),
    )
    assert chosen.exit_code == 0, chosen.output
    assert chosen.stdout == "family-2026\n"
    listed = rows(config_path)
    assert set(listed) == {token, "family-2026"}
    assert "0/unlimited used" in listed[token] and "never expires" in listed[token]
    in_7_days = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 7 * 86400))
    assert "0/2 used" in listed["family-2026"]
    assert f"expires {in_7_days}" in listed["family-2026"]
    assert listed["family-2026"].endswith("valid")


def test_revoke_removes_it(config_path: Path) -> None:
    assert invoke("create", "--token", "gone-soon", "--config", str(config_path)).exit_code == 0
    result = invoke("revoke", "gone-soon", "--config", str(config_path))
    assert result.exit_code == 0, result.output
    assert "Revoked the registration token gone-soon." in result.stdout
    assert "gone-soon" not in invoke("list", "--config", str(config_path)).stdout
    again = invoke("revoke", "gone-soon", "--config", str(config_path))
    assert again.exit_code == 1
    assert "error: there is no registration token 'gone-soon'" in again.stderr


def test_bad_input_is_refused_with_the_reason(config_path: Path) -> None:
    for args, message in (
        (("--token", "has space"), "error: cannot create the token: token must be 1-64 characters"),
        (("--expires-in", "3y"), "error: --expires-in: '3y' is not a duration"),
        (("--uses", "-1"), "Invalid value for '--uses'"),
    ):
        result = invoke("create", *args, "--config", str(config_path))
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
    assert invoke("create", "--token", "dup", "--config", str(config_path)).exit_code == 0
    dup = invoke("create", "--token", "dup", "--config", str(config_path))
    assert dup.exit_code == 2 and "Token already exists" in dup.stderr


def test_create_warns_when_registration_does_not_use_tokens(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", tmp_path / "data", mode="closed")
    result = invoke("create", "--config", str(config))
    assert result.exit_code == 0
    assert 'registration.mode is "closed"' in result.stderr


async def test_a_token_from_the_cli_registers_an_account_on_a_running_server(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    async with running_server(data_dir, {"registration.mode": "token"}) as srv:
        config = write_config(tmp_path / "c.toml", data_dir, server_name=SERVER_NAME)
        # The CLI runs its own event loop (asyncio.run): in a thread, next to the server's.
        created = await asyncio.to_thread(
            invoke, "create", "--uses", "1", "--config", str(config)
        )
        assert created.exit_code == 0, created.output
        token = created.stdout.strip()
        resp = await srv.client.post(f"{V3}/register", json={
            "username": "newcomer", "password": PASSWORD,
            "auth": {"type": "m.login.registration_token", "token": token},
        })
        session = resp.json()["session"]
        resp = await srv.client.post(
            f"{V3}/register", json={"auth": {"type": "m.login.dummy", "session": session}}
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["user_id"] == f"@newcomer:{SERVER_NAME}"
        listed = await asyncio.to_thread(rows, config)
        assert "1/1 used" in listed[token] and "used up/expired" in listed[token]
