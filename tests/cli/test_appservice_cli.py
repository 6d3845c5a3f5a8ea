"""`dendrite-lite appservice list`: the registrations of the config file and each one's queue,
from a real database file; and `config check` naming a broken registration file."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiosqlite
from typer.testing import CliRunner

from dendrite_lite.cli.main import app
from dendrite_lite.storage import Storage
from dendrite_lite.storage import appservices as table
from tests.integration.appservice_fake import write_registration

runner = CliRunner()


def _config(tmp_path: Path, *files: str) -> Path:
    listed = ", ".join(f'"{f}"' for f in files)
    path = tmp_path / "dendrite-lite.toml"
    path.write_text(
        f'[server]\nserver_name = "example.org"\ndata_dir = "{(tmp_path / "data").as_posix()}"\n'
        f"[appservices]\nregistration_files = [{listed}]\n"
    )
    return path


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args), env={"DENDRITE_LITE_CONFIG": None})


def test_list_shows_registrations_and_queues(tmp_path: Path) -> None:
    write_registration(
        tmp_path, "whatsapp", url="http://127.0.0.1:29318", receive_ephemeral=True,
        namespaces={"users": [{"regex": "@whatsapp_.*:example\\.org", "exclusive": True}]},
        protocols=["whatsapp"],
    )
    write_registration(tmp_path, "notifier")
    config = _config(tmp_path, "whatsapp.yaml", "notifier.yaml")

    async def queue_two() -> None:
        storage = await Storage.open(tmp_path / "data" / "homeserver.db")

        async def write(conn: aiosqlite.Connection) -> None:
            await table.insert_outbox_events(conn, [("whatsapp", "$a"), ("whatsapp", "$b")], 1)
            await table.update_failure(conn, "whatsapp", 1_800_000_000_000, "answered 502", 2000, 0)

        await storage.db.write(write)
        await storage.close()

    asyncio.run(queue_two())
    result = invoke("appservice", "list", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert "whatsapp  (" in result.stdout
    assert "  url: http://127.0.0.1:29318" in result.stdout
    assert "  sender: @whatsappbot:example.org" in result.stdout
    assert "  users: @whatsapp_.*:example\\.org  (exclusive)" in result.stdout
    assert "  options: ephemeral events" in result.stdout
    assert "  protocols: whatsapp" in result.stdout
    assert "  queued: 2 event(s)" in result.stdout
    assert "  last failure: 2027-01-15 08:00:00 UTC: answered 502" in result.stdout
    assert "  url: (none: receives nothing)" in result.stdout
    assert "  sender: @notifierbot:example.org" in result.stdout


def test_config_check_names_the_broken_file(tmp_path: Path) -> None:
    bad = write_registration(tmp_path, "bad", namespaces={"aliases": [{"regex": "#[", "exclusive": True}]})
    config = _config(tmp_path, "bad.yaml")
    result = invoke("config", "check", "--config", str(config))
    assert result.exit_code == 2
    assert f"appservices.registration_files: {bad}: namespaces.aliases[0].regex" in result.output
    listed = invoke("appservice", "list", "--config", str(config))
    assert listed.exit_code == 2 and "namespaces.aliases[0].regex" in listed.output


def test_list_without_appservices(tmp_path: Path) -> None:
    result = invoke("appservice", "list", "--config", str(_config(tmp_path)))
    assert result.exit_code == 0
    assert "No application services" in result.stdout


def test_overlapping_namespaces_are_named_by_file_and_field(tmp_path: Path) -> None:
    """Two bridges' user namespaces sharing ids: `config check` and `appservice list` refuse
    them, naming the file, the field, both regexes and an id both claim."""
    wa = write_registration(
        tmp_path, "whatsapp",
        namespaces={"users": [{"regex": "^@whatsapp_.*:example\\.org$", "exclusive": True}]},
    )
    other = write_registration(
        tmp_path, "puppets",
        namespaces={"users": [{"regex": "@.*_[0-9]+:example\\.org", "exclusive": False}]},
    )
    config = _config(tmp_path, "whatsapp.yaml", "puppets.yaml")
    expected = (
        f"appservices.registration_files: {wa}: namespaces.users[0].regex: "
        "'^@whatsapp_.*:example\\\\.org$' is exclusive here but overlaps "
        f"{other}'s '@.*_[0-9]+:example\\\\.org' (appservice 'puppets'), "
        "e.g. '@whatsapp_0:example.org'"
    )
    for command in ("config", "check"), ("appservice", "list"):
        result = invoke(*command, "--config", str(config))
        assert result.exit_code == 2, result.output
        assert expected in result.output, result.output
