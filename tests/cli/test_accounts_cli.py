"""`dendrite-lite create-account` and create_first_admin, against a real database file."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dendrite_lite.cli.accounts import create_first_admin
from dendrite_lite.cli.main import app
from dendrite_lite.config import load_config
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.storage import Storage
from dendrite_lite.users.accounts import check_password

runner = CliRunner()


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "dendrite-lite.toml"
    path.write_text(
        '[server]\nserver_name = "example.org"\n'
        f'data_dir = "{(tmp_path / "data").as_posix()}"\n'
    )
    return path


def invoke(*args: str, input: str | None = None, env: dict[str, str | None] | None = None):
    return runner.invoke(
        app, ["create-account", *args], input=input,
        env={"DENDRITE_LITE_CONFIG": None, **(env or {})},
    )


def _accounts(config_path: Path) -> dict[str, tuple[bool, str | None]]:
    db = load_config(config_path).database_path
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT user_id, is_admin, password_hash FROM accounts").fetchall()
    finally:
        conn.close()
    return {user_id: (bool(is_admin), password_hash) for user_id, is_admin, password_hash in rows}


def _password_ok(config_path: Path, user_id: str, password: str) -> bool:
    async def check() -> bool:
        storage = await Storage.open(load_config(config_path).database_path, readers=1)
        try:
            return await check_password(storage, user_id, password)
        finally:
            await storage.close()

    # The CLI runs its own event loop with asyncio.run; so does this check, in a thread of its
    # own so that it does not meet pytest's session loop.
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, check()).result()


def test_create_account_with_prompted_password(config_path: Path) -> None:
    result = invoke("alice", "--config", str(config_path), input="s3cret\ns3cret\n")
    assert result.exit_code == 0, result.output
    assert "Created the account @alice:example.org" in result.output
    assert "s3cret" not in result.output  # hidden input
    accounts = _accounts(config_path)
    assert list(accounts) == ["@alice:example.org"]
    is_admin, password_hash = accounts["@alice:example.org"]
    assert not is_admin and password_hash.startswith("$argon2id$")
    assert _password_ok(config_path, "@alice:example.org", "s3cret")


def test_prompt_asks_twice_and_insists_on_a_match(config_path: Path) -> None:
    result = invoke("bob", "--config", str(config_path), input="one\ntwo\nthree\nthree\n")
    assert result.exit_code == 0, result.output
    assert "do not match" in result.output.lower()
    assert _password_ok(config_path, "@bob:example.org", "three")


def test_full_user_id_admin_and_password_file(config_path: Path, tmp_path: Path) -> None:
    password_file = tmp_path / "pw.txt"
    password_file.write_text("from a file\n")
    result = invoke(
        "@root:example.org", "--admin", "--password-file", str(password_file),
        "--config", str(config_path),
    )
    assert result.exit_code == 0, result.output
    assert "Created the admin account @root:example.org" in result.output
    assert _accounts(config_path)["@root:example.org"][0] is True
    # The trailing newline an editor adds is not part of the password.
    assert _password_ok(config_path, "@root:example.org", "from a file")


def test_password_from_stdin(config_path: Path) -> None:
    result = invoke("carol", "--password-file", "-", "--config", str(config_path), input="pw\n")
    assert result.exit_code == 0, result.output
    assert _password_ok(config_path, "@carol:example.org", "pw")


def test_duplicate_refused_with_exit_1(config_path: Path) -> None:
    assert invoke("dave", "--config", str(config_path), input="a\na\n").exit_code == 0
    before = _accounts(config_path)
    result = invoke("@dave:example.org", "--admin", "--config", str(config_path), input="b\nb\n")
    assert result.exit_code == 1
    assert "error: the account @dave:example.org already exists" in result.output
    assert _accounts(config_path) == before


def test_config_from_env(config_path: Path) -> None:
    result = invoke("erin", input="p\np\n", env={"DENDRITE_LITE_CONFIG": str(config_path)})
    assert result.exit_code == 0, result.output
    assert "@erin:example.org" in _accounts(config_path)


def test_upper_case_name_is_lowered(config_path: Path) -> None:
    result = invoke("Frank", "--config", str(config_path), input="p\np\n")
    assert result.exit_code == 0, result.output
    assert "@frank:example.org" in _accounts(config_path)


@pytest.mark.parametrize(
    ("user", "message"),
    [
        ("@gina:elsewhere.org", "belongs to elsewhere.org, but this server is example.org"),
        ("gi na", "may only contain"),
        ("@gina", "is not a user ID"),
    ],
)
def test_bad_user_refused_before_prompting(config_path: Path, user: str, message: str) -> None:
    result = invoke(user, "--config", str(config_path))  # no input: a prompt would abort
    assert result.exit_code == 2
    assert message in result.output
    assert "Password" not in result.output


def test_missing_and_broken_config(tmp_path: Path) -> None:
    result = invoke("x", "--config", str(tmp_path / "nope.toml"))
    assert result.exit_code == 2
    assert "error: no config file at" in result.output
    broken = tmp_path / "broken.toml"
    broken.write_text('[server]\nserver_name = "example.org"\nsynchronous = 3\n')
    result = invoke("x", "--config", str(broken))
    assert result.exit_code == 2
    assert "error:" in result.output


def test_database_too_new_refused(config_path: Path) -> None:
    assert invoke("hal", "--config", str(config_path), input="p\np\n").exit_code == 0
    db = load_config(config_path).database_path
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO schema_version VALUES (9999, 'future', 1)")
    conn.commit()
    conn.close()
    result = invoke("ivy", "--config", str(config_path), input="p\np\n")
    assert result.exit_code == 1
    assert "newer dendrite-lite" in result.output
    assert "@ivy:example.org" not in _accounts(config_path)


def test_create_first_admin(config_path: Path) -> None:
    config = load_config(config_path)
    assert create_first_admin(config, "admin", "pw") == "@admin:example.org"
    assert _accounts(config_path)["@admin:example.org"][0] is True
    assert _password_ok(config_path, "@admin:example.org", "pw")
    with pytest.raises(MatrixError) as info:
        create_first_admin(config, "admin", "pw2")
    assert info.value.errcode == Errcode.USER_IN_USE
