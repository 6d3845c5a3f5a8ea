"""Findings about the local setup, when the doctor runs for the server configured in --config
(on the machine that runs it): public_baseurl against the server name and its delegation,
open registration on a public listener, who can read the signing key and the database, and
the free space where the data lives.

The filesystem is read directly (stat, disk usage): these checks have no network side. The
disk-usage function is injectable because a test cannot fill a disk.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shlex
import shutil
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from dendrite_lite.config import Config, split_address
from dendrite_lite.delegation.discovery import Resolution, split_server_name
from dendrite_lite.delegation.doctor.findings import Finding, Status

__all__ = ["DISK_FAIL_BYTES", "DISK_WARN_BYTES", "LocalSetup", "federation_port_finding", "local_findings"]

DISK_WARN_BYTES = 1 << 30  # 1 GiB: a few days of media uploads on a small server
DISK_FAIL_BYTES = 100 << 20  # 100 MiB: one large upload or a WAL checkpoint from a full disk
_GROUP_OTHER_READ = stat.S_IRGRP | stat.S_IROTH


class DiskSpace(Protocol):
    @property
    def free(self) -> int: ...


@dataclass(frozen=True, slots=True)
class LocalSetup:
    """The configured server, and how to measure a filesystem (shutil.disk_usage; a fake in
    tests)."""

    config: Config
    disk_usage: Callable[[Path], DiskSpace] = shutil.disk_usage


def local_findings(setup: LocalSetup, resolution: Resolution) -> list[Finding]:
    """`resolution`: where the server name resolves to (well-known m.server, SRV targets), as
    the doctor found it."""
    config = setup.config
    delegated_hosts = [resolution.tls_name, *(t.host for t in resolution.targets)]
    return [
        federation_port_finding(config, resolution),
        public_baseurl_finding(config, delegated_hosts),
        registration_finding(config),
        signing_key_finding(config.signing_key_path, config.server.server_name),
        database_finding(config.database_path),
        disk_finding(config.server.data_dir, setup.disk_usage, media_dir=config.media_path),
    ]


def federation_port_finding(config: Config, resolution: Resolution) -> Finding:
    """Whether peers connect to the port the federation listener binds. A reverse proxy, or a
    router forwarding one port to another, can join two different ports, so a difference
    WARNs with the records that would point peers at the listener itself."""
    key = "listen.federation" if config.listen.federation else "listen.client"
    _, port = split_address(config.listen.federation or config.listen.client, key)
    ports = sorted({t.port for t in resolution.targets})
    where = ", ".join(t.netloc for t in resolution.targets)
    if port in ports:
        return Finding("local.federation_port", "local", Status.OK,
                       f"Peers connect to {where}, and {key} listens on port {port}.")
    if not config.federation_tls:
        return Finding(
            "local.federation_port", "local", Status.OK,
            f"Peers connect to {where}; {key} listens on port {port} in plain HTTP, so a reverse"
            " proxy must forward that to it (the signed request above says whether it does).",
        )
    host, _ = split_server_name(config.server.server_name)
    target = resolution.targets[0].host if resolution.targets else host
    return Finding(
        "local.federation_port", "local", Status.WARN,
        f"Peers connect to {where}, but {key} listens on port {port}: only a router forwarding"
        f" port {ports[0]} to {port} joins them.",
        f"Tell peers the port: publish `_matrix-fed._tcp.{host}. 3600 IN SRV 10 0 {port} {target}.`"
        f' or serve https://{host}/.well-known/matrix/server with {{"m.server": "{target}:{port}"}};'
        f' or listen where peers connect: `{key.split(".")[1]} = "<address>:{ports[0]}"` in [listen].',
    )


def public_baseurl_finding(config: Config, delegated_hosts: Iterable[str]) -> Finding:
    server_host, _ = split_server_name(config.server.server_name)
    delegated = [h for h in dict.fromkeys(delegated_hosts) if h != server_host]
    suggested = delegated[0] if delegated else server_host
    suggested = f"[{suggested}]" if ":" in suggested else suggested
    fix = f'Set `public_baseurl = "https://{suggested}/"` in [server] (the URL clients reach the client API at).'
    configured = config.server.public_baseurl
    if not configured:
        return Finding(
            "local.public_baseurl", "local", Status.WARN,
            f"server.public_baseurl is not set, so dendrite-lite tells clients (login,"
            f" /.well-known/matrix/client) and peers (/.well-known/matrix/server) that it is at"
            f" {config.public_baseurl}: a guess from the server name, wrong behind a reverse proxy"
            " or a delegation.",
            fix,
        )
    try:
        host = urlsplit(configured).hostname
    except ValueError:
        host = None
    if host == server_host or host in delegated:
        whose = "the server name's host" if host == server_host else f"where {config.server.server_name} is delegated"
        return Finding("local.public_baseurl", "local", Status.OK,
                       f"server.public_baseurl {configured} is on {host}, {whose}.")
    name = config.server.server_name
    if delegated:
        which = f"neither {server_host} nor where {name} is delegated ({', '.join(delegated)})"
    else:
        which = f"not {server_host} ({name} is not delegated)"
    return Finding(
        "local.public_baseurl", "local", Status.WARN,
        f"server.public_baseurl {configured} is on {host}, which is {which}:"
        " clients sent there by login or /.well-known/matrix/client may reach another server.",
        fix,
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a hostname: it may resolve to anything


def registration_finding(config: Config) -> Finding:
    mode, bind = config.registration.mode, config.listen.client
    if mode != "open":
        return Finding("local.registration", "local", Status.OK, f'registration.mode is "{mode}".')
    host = bind.rpartition(":")[0].strip("[]")
    if _is_loopback(host):
        # A reverse proxy can still expose it; the bind address is all this check can know.
        return Finding(
            "local.registration", "local", Status.OK,
            f'registration.mode is "open", but the client listener binds {bind} (loopback):'
            " only this machine, or a reverse proxy in front of it, reaches it.",
        )
    return Finding(
        "local.registration", "local", Status.WARN,
        f'registration.mode is "open" and the client listener binds {bind}: anyone on the'
        " internet can create accounts (spam and abuse sent from your server name).",
        'Set `mode = "token"` in [registration] (registration.mode = "token"), restart, and'
        " invite people with `dendrite-lite registration-token create`.",
    )


def _readable_by(mode: int) -> str:
    who = [name for bit, name in ((stat.S_IRGRP, "its group"), (stat.S_IROTH, "everyone")) if mode & bit]
    return " and ".join(who)


def signing_key_finding(path: Path, server_name: str) -> Finding:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return Finding("local.signing_key", "local", Status.FAIL,
                       f"There is no signing key at {path}: the server cannot start.",
                       "Create it: `dendrite-lite generate-keys`.")
    except OSError as e:
        return Finding("local.signing_key", "local", Status.WARN,
                       f"Cannot read the permissions of {path} ({e.strerror}).",
                       "Run the doctor as the user the server runs as.")
    if mode & _GROUP_OTHER_READ:
        return Finding(
            "local.signing_key", "local", Status.FAIL,
            f"The signing key {path} is readable by {_readable_by(mode)} (mode"
            f" {stat.S_IMODE(mode):04o}): whoever reads it can sign events and requests as"
            f" {server_name}.",
            f"`chmod 600 {shlex.quote(str(path))}`",
        )
    return Finding("local.signing_key", "local", Status.OK,
                   f"The signing key {path} is readable by its owner only (mode {stat.S_IMODE(mode):04o}).")


def database_finding(path: Path) -> Finding:
    # SQLite in WAL mode keeps recent writes in -wal and -shm next to the file: same data.
    files = [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()]
    if not files:
        return Finding("local.database", "local", Status.OK,
                       f"The database {path} does not exist yet: the server creates it at first start.")
    try:
        loose = [p for p in files if p.stat().st_mode & _GROUP_OTHER_READ]
    except OSError as e:
        return Finding("local.database", "local", Status.WARN,
                       f"Cannot read the permissions of {path} ({e.strerror}).",
                       "Run the doctor as the user the server runs as.")
    if loose:
        mode = loose[0].stat().st_mode
        return Finding(
            "local.database", "local", Status.WARN,
            f"The database {loose[0]} is readable by {_readable_by(mode)} (mode"
            f" {stat.S_IMODE(mode):04o}): it holds private messages, password hashes and access tokens.",
            f"`chmod 600 {' '.join(shlex.quote(str(p)) for p in loose)}`",
        )
    return Finding("local.database", "local", Status.OK, f"The database {path} is readable by its owner only.")


def _size(n: int) -> str:
    return f"{n / (1 << 30):.1f} GiB" if n >= 1 << 30 else f"{n / (1 << 20):.0f} MiB"


def disk_finding(
    data_dir: Path, disk_usage: Callable[[Path], DiskSpace], *, media_dir: Path | None = None
) -> Finding:
    """`media_dir`: the media store, whose size the finding tells (uploads are what fills a
    small server's disk, and `dendrite-lite media purge-remote` frees the cached part)."""
    # Before the first start data_dir may not exist: its filesystem is its nearest parent's.
    existing = next((p for p in (data_dir, *data_dir.absolute().parents) if p.exists()), data_dir)
    try:
        free = disk_usage(existing).free
    except OSError as e:
        return Finding("local.disk", "local", Status.WARN,
                       f"Cannot measure the free space at {existing} ({e.strerror}).", None)
    where = f"the filesystem of {data_dir} (server.data_dir)"
    media = f" Media files ({media_dir}) use {_size(_directory_bytes(media_dir))}." if media_dir else ""
    fix = (
        f"Free space on {where}, or move server.data_dir to a larger disk: the database and"
        " uploaded media live there."
    )
    if free < DISK_FAIL_BYTES:
        return Finding(
            "local.disk", "local", Status.FAIL,
            f"Only {_size(free)} free on {where}: when it fills, database writes fail and the"
            f" server stops accepting messages.{media}", fix,
        )
    if free < DISK_WARN_BYTES:
        return Finding("local.disk", "local", Status.WARN,
                       f"Only {_size(free)} free on {where} (less than {_size(DISK_WARN_BYTES)}).{media}", fix)
    return Finding("local.disk", "local", Status.OK, f"{_size(free)} free on {where}.{media}")


def _directory_bytes(path: Path) -> int:
    """The bytes of the files under `path` (0 when it does not exist yet)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):  # deleted while we walk
                total += os.lstat(os.path.join(root, name)).st_size
    return total
