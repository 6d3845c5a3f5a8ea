"""`dendrite-lite create-account`, and the first admin account that `init` creates.

Both work on the database file directly, with no server running or needed. That is safe while
the server runs too: the database is in WAL mode and both sides wait for SQLite's write lock
(busy_timeout) instead of failing.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Optional

import typer

from dendrite_lite.cli.common import DEFAULT_CONFIG, ConfigOption, fail, load_config_or_exit
from dendrite_lite.cli.init_wizard import read_password_file
from dendrite_lite.config import Config
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.storage import MigrationError, SchemaTooNew, Storage
from dendrite_lite.users import accounts as accounts_service

__all__ = ["create_account", "create_first_admin"]

EXIT_REFUSED = 1  # the command was understood, but cannot be done (user exists, DB too new)


def create_account(
    user: Annotated[
        str, typer.Argument(help="The new user: a name (alice) or a full user ID (@alice:example.org).")
    ],
    admin: Annotated[bool, typer.Option("--admin", help="Make the account a server admin.")] = False,
    password_file: Annotated[
        Optional[Path],
        typer.Option(
            "--password-file",
            help="Read the password from this file ('-' = stdin) instead of asking for it.",
        ),
    ] = None,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Create a user account on this server (works whether or not the server is running)."""
    cfg = load_config_or_exit(config)
    user_id = _user_id_for(user, cfg.server.server_name)
    # Check the name before asking for a password the user would then have typed for nothing.
    try:
        accounts_service.validate_user_id(user_id)
    except MatrixError as e:
        fail(f"cannot create {user_id}: {e.error}")
    if password_file is not None:
        password = read_password_file(password_file)
    else:
        password = typer.prompt(
            f"Password for {user_id}", hide_input=True, confirmation_prompt=True
        )
    try:
        asyncio.run(_create(cfg, user_id, password, admin=admin))
    except MatrixError as e:
        if e.errcode == Errcode.USER_IN_USE:
            fail(f"the account {user_id} already exists", code=EXIT_REFUSED)
        fail(f"cannot create {user_id}: {e.error}")
    except (SchemaTooNew, MigrationError) as e:
        fail(str(e), code=EXIT_REFUSED)
    typer.echo(f"Created {'the admin account' if admin else 'the account'} {user_id}.")


def create_first_admin(config: Config, localpart: str, password: str) -> str:
    """Create an admin account for `init`; return its user id.

    Raises MatrixError (M_INVALID_USERNAME, M_USER_IN_USE) and SchemaTooNew/MigrationError.
    """
    user_id = accounts_service.make_user_id(localpart, config.server.server_name)
    asyncio.run(_create(config, user_id, password, admin=True))
    return user_id


async def _create(config: Config, user_id: str, password: str, *, admin: bool) -> None:
    # One reader is plenty for a one-shot command.
    storage = await Storage.open(
        config.database_path, synchronous=config.database.synchronous, readers=1
    )
    try:
        await accounts_service.create_account(storage, user_id, password, admin=admin)
    finally:
        await storage.close()


def _user_id_for(user: str, server_name: str) -> str:
    """A full user id from a localpart or a full id, which must be of this server."""
    if user.startswith("@"):
        localpart, sep, server = user[1:].partition(":")
        if not sep:
            fail(f"{user!r} is not a user ID: expected @name:{server_name} or just a name")
        if server != server_name:
            fail(
                f"{user} belongs to {server}, but this server is {server_name}",
                hint="Accounts can only be created for this server's own domain.",
            )
    else:
        localpart = user
    # The spec asks servers to lower-case new user names: @Alice and @alice are one person.
    return accounts_service.make_user_id(localpart.lower(), server_name)

