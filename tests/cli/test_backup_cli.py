"""`dendrite-lite backup DIR` and `dendrite-lite restore DIR` as a self-hoster runs them: onto a
new machine with no config yet (the backup's config lands there, its ./data beside it), and
refusing to replace existing data without --force."""

from __future__ import annotations

import asyncio
from pathlib import Path

from typer.testing import CliRunner

from dendrite_lite.cli.main import app
from dendrite_lite.config import load_config
from dendrite_lite.storage import Storage
from dendrite_lite.storage.backup import integrity_problems, select_schema_version

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), env={"DENDRITE_LITE_CONFIG": None})


def _server(home: Path) -> Path:
    """A configured server with a database and a signing key, as `init` leaves one."""
    home.mkdir()
    config_path = home / "dendrite-lite.toml"
    config_path.write_text('[server]\nserver_name = "family.example"\ndata_dir = "./data"\n')
    assert invoke("generate-keys", "--config", str(config_path)).exit_code == 0

    async def create_database() -> None:
        storage = await Storage.open(load_config(config_path).database_path, readers=1)
        await storage.close()

    asyncio.run(create_database())
    return config_path


def test_backup_then_restore_on_a_new_machine(tmp_path: Path) -> None:
    config_path = _server(tmp_path / "old")
    result = invoke("backup", str(tmp_path / "backup"), "--config", str(config_path))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"backup written to {tmp_path / 'backup'}"
    assert lines[1].split()[0] == "database" and "(schema " in lines[1]
    assert lines[2].split()[:3] == ["media", "0", "files,"]
    assert lines[3].split() == ["also", "signing", "key,", "config"]

    new_config = tmp_path / "new" / "dendrite-lite.toml"
    result = invoke("restore", str(tmp_path / "backup"), "--config", str(new_config))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == f"config restored to {new_config}"
    assert "restored family.example from" in result.stdout
    restored = load_config(new_config)
    assert restored.server.data_dir == tmp_path / "new" / "data"
    assert integrity_problems(restored.database_path) == []
    assert select_schema_version(restored.database_path) > 0
    old_key = load_config(config_path).signing_key_path.read_bytes()
    assert restored.signing_key_path.read_bytes() == old_key
    assert restored.signing_key_path.stat().st_mode & 0o777 == 0o600

    # A second restore would replace that server's data: only with --force.
    again = invoke("restore", str(tmp_path / "backup"), "--config", str(new_config))
    assert again.exit_code == 1
    assert "already exists" in again.stderr and "--force" in again.stderr
    forced = invoke("restore", str(tmp_path / "backup"), "--config", str(new_config), "--force")
    assert forced.exit_code == 0, forced.output


def test_backup_into_an_existing_directory_or_from_nothing_is_refused(tmp_path: Path) -> None:
    config_path = _server(tmp_path / "srv")
    (tmp_path / "taken").mkdir()
    result = invoke("backup", str(tmp_path / "taken"), "--config", str(config_path))
    assert result.exit_code == 1
    assert f"error: {tmp_path / 'taken'} already exists" in result.stderr

    result = invoke("restore", str(tmp_path / "nothing"), "--config", str(tmp_path / "x.toml"))
    assert result.exit_code == 2
    assert "has none to restore" in result.stderr
