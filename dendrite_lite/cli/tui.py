"""`dendrite-lite tui`: the terminal admin interface (tui/), over the running server's admin
socket. Textual is imported only by this command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dendrite_lite.cli.common import DEFAULT_CONFIG, ConfigOption, load_config_or_exit

__all__ = ["tui"]


def tui(
    config: ConfigOption = DEFAULT_CONFIG,
    socket: Annotated[
        Path | None,
        typer.Option("--socket", help="The admin socket. Default: listen.admin_socket of the config."),
    ] = None,
) -> None:
    """Look after the running server in the terminal: dashboard, users, rooms, federation,
    reports and its live log. Keyboard only (every key is in the footer); works in 80x24 over
    SSH. It talks to the server through its admin socket, so run it as the server's user."""
    socket_path = socket if socket is not None else load_config_or_exit(config).admin_socket_path
    from dendrite_lite.tui.admin_client import AdminClient
    from dendrite_lite.tui.app import DendriteLiteApp

    DendriteLiteApp(AdminClient(socket_path)).run()
