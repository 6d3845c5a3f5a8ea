"""The systemd unit of an installation: `render_unit(UnitSettings)`, which
`dendrite-lite install-service` writes and `systemd/dendrite-lite.service` is one rendering of
(a test keeps the two equal).

Hardening: the server needs to read its config, write its data directory, open TCP and unix
sockets and (for 80/443) bind low ports; the unit grants exactly that. It runs as a dynamic user
whose only writable places are its state and cache directories (or, for a data directory outside
/var/lib, a named user with that directory writable), with the system read-only, no home
directories, no devices, no new privileges, and the syscalls of an ordinary service.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

__all__ = ["UnitSettings", "render_unit"]


@dataclass(frozen=True, slots=True)
class UnitSettings:
    exec_start: tuple[str, ...]  # the command before `run --config ...`
    config_path: Path
    data_dir: Path
    # None: DynamicUser=yes with StateDirectory (the data directory under /var/lib); else the
    # account that owns the data directory.
    user: str | None = None
    low_ports: bool = True  # a listener below 1024 (80, 443) needs CAP_NET_BIND_SERVICE
    # "all" when the main PID is a PyInstaller one-file bootloader and the server its child.
    notify_access: str = "main"
    memory_high: str = "512M"
    watchdog_sec: int = 60


def _state_directory(data_dir: Path) -> str | None:
    # The whole /var/lib/<name> (config, data directory, backups beside them) is the state
    # directory systemd gives the dynamic user.
    parts = data_dir.parts
    if len(parts) >= 4 and parts[:3] == ("/", "var", "lib"):
        return parts[3]
    return None


def render_unit(s: UnitSettings) -> str:
    command = " ".join(
        shlex.quote(a) for a in (*s.exec_start, "run", "--config", str(s.config_path))
    )
    state_dir = _state_directory(s.data_dir)
    lines = [
        "# dendrite-lite: a Matrix homeserver. Written by `dendrite-lite install-service`.",
        "[Unit]",
        "Description=dendrite-lite Matrix homeserver",
        "Documentation=man:systemd.service(5)",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        # READY=1 once the listeners accept and the database is open (systemd_notify.py).
        "Type=notify",
        f"NotifyAccess={s.notify_access}",
        f"ExecStart={command}",
        f"WorkingDirectory={s.config_path.parent}",
        "Restart=on-failure",
        "RestartSec=5s",
        "TimeoutStartSec=5min",  # migrating a large database forward at the first start
        "TimeoutStopSec=30s",
        f"WatchdogSec={s.watchdog_sec}s",
        "",
        "# Who it runs as and what it may write.",
    ]
    if s.user is None and state_dir is not None:
        lines += ["DynamicUser=yes", f"StateDirectory={state_dir}", "StateDirectoryMode=0700"]
    else:
        lines += [f"User={s.user or 'dendrite-lite'}", f"ReadWritePaths={s.data_dir}"]
    lines += [
        # shiv unpacks the zipapp here, and temporary files go here, under ProtectSystem=strict.
        "CacheDirectory=dendrite-lite",
        "Environment=SHIV_ROOT=%C/dendrite-lite TMPDIR=%C/dendrite-lite",
        "UMask=0077",
        "",
        "# Hardening (systemd-analyze security dendrite-lite).",
    ]
    if s.low_ports:
        lines += [
            "AmbientCapabilities=CAP_NET_BIND_SERVICE",
            "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        ]
    else:
        lines += ["CapabilityBoundingSet="]
    lines += [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "PrivateMounts=yes",
        "PrivateUsers=" + ("no" if s.low_ports else "yes"),
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        "ProtectClock=yes",
        "ProtectHostname=yes",
        "ProtectProc=invisible",
        "ProcSubset=pid",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "RestrictNamespaces=yes",
        "RestrictRealtime=yes",
        "RestrictSUIDSGID=yes",
        "LockPersonality=yes",
        "RemoveIPC=yes",
        "SystemCallArchitectures=native",
        "SystemCallFilter=@system-service",
        "SystemCallFilter=~@privileged",
        "SystemCallErrorNumber=EPERM",
        "DevicePolicy=closed",
        f"MemoryHigh={s.memory_high}",
        "LimitNOFILE=65536",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ]
    return "\n".join(lines) + "\n"
