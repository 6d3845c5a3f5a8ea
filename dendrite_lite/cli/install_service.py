"""`dendrite-lite install-service`: writes the systemd unit for this installation (a pip or pipx
install, the zipapp, or the PyInstaller binary), with this config's paths, and prints the
systemctl commands that start it. The unit itself is systemd_unit.py's."""

from __future__ import annotations

import os
import pwd
import sys
from pathlib import Path
from typing import Annotated

import typer

from dendrite_lite.cli.common import (
    DEFAULT_CONFIG,
    ConfigOption,
    fail,
    load_config_or_exit,
)
from dendrite_lite.config import Config, split_address
from dendrite_lite.systemd_unit import UnitSettings, render_unit

__all__ = ["install_service", "this_installation"]

DEFAULT_UNIT = Path("/etc/systemd/system/dendrite-lite.service")


def this_installation() -> tuple[tuple[str, ...], str]:
    """The command that runs this installation of dendrite-lite, and systemd's NotifyAccess."""
    if getattr(sys, "frozen", False):
        # PyInstaller: a one-file binary's bootloader is the unit's main PID and the server its
        # child, so the child's READY=1 must be accepted.
        return (str(Path(sys.executable).resolve()),), "all"
    argv0 = Path(sys.argv[0]).resolve()
    if argv0.suffix == ".pyz":  # the shiv zipapp, run by a system Python
        return (str(Path(sys.executable).resolve()), str(argv0)), "main"
    if argv0.name == "dendrite-lite" and argv0.is_file():  # a pip/pipx console script
        return (str(argv0),), "main"
    return (str(Path(sys.executable).resolve()), "-m", "dendrite_lite"), "main"


def _needs_low_ports(config: Config) -> bool:
    binds = [config.listen.client, config.listen.federation]
    if config.tls.mode == "acme":
        binds.append(config.listen.acme_http)
    return any(bind and split_address(bind)[1] < 1024 for bind in binds)


def _owner(path: Path) -> str:
    try:
        return pwd.getpwuid(path.stat().st_uid).pw_name
    except (KeyError, OSError):
        return "dendrite-lite"


def install_service(
    config_path: ConfigOption = DEFAULT_CONFIG,
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help='Where to write the unit ("-": print it).'),
    ] = DEFAULT_UNIT,
    user: Annotated[
        str | None,
        typer.Option(help="Run as this existing account instead of a dynamic user."),
    ] = None,
) -> None:
    """Write the systemd service for this installation and config, hardened.

    With the data directory under /var/lib it runs as a **dynamic user** that owns that state
    directory; otherwise as the account owning the data directory (or --user). It binds ports
    below 1024 (80, 443) only when the config listens on them. Then run the systemctl commands
    it prints; `journalctl -u dendrite-lite` shows the server's log.
    """
    config = load_config_or_exit(config_path)
    exec_start, notify_access = this_installation()
    data_dir = config.server.data_dir.resolve()
    under_var_lib = data_dir.is_relative_to("/var/lib") and data_dir != Path("/var/lib")
    if user is None and not under_var_lib:
        user = _owner(data_dir if data_dir.exists() else config_path.resolve().parent)
    settings = UnitSettings(
        exec_start=exec_start,
        config_path=config_path.resolve(),
        data_dir=data_dir,
        user=user,
        low_ports=_needs_low_ports(config),
        notify_access=notify_access,
    )
    unit = render_unit(settings)
    hidden = [p for p in (Path(exec_start[-1]), config_path.resolve(), data_dir) if _in_home(p)]
    if hidden:
        typer.echo(
            f"warning: {hidden[0]} is under /home or /root, which the service cannot see "
            "(ProtectHome=yes): install and configure it outside home directories",
            err=True,
        )
    if str(output) == "-":
        typer.echo(unit, nl=False)
        return
    try:
        output.write_text(unit)
    except OSError as e:
        fail(f"cannot write {output}: {e.strerror}", hint="Run it as root (sudo), or use -o -.")
    who = f"as {user}" if user else "as a dynamic user"
    typer.echo(f"wrote {output}: runs `{' '.join(exec_start)} run` {who}, data in {data_dir}")
    typer.echo("Start it now and at every boot:")
    typer.echo("  sudo systemctl daemon-reload")
    typer.echo(f"  sudo systemctl enable --now {output.stem}")
    typer.echo(f"  systemctl status {output.stem}        # READY once it serves")
    typer.echo(f"  journalctl -u {output.stem} -f        # its log (-p warning: problems only)")


def _in_home(path: Path) -> bool:
    return path.is_relative_to("/home") or path.is_relative_to("/root") or (
        "HOME" in os.environ and os.environ["HOME"] not in ("/", "") and path.is_relative_to(os.environ["HOME"])
    )
