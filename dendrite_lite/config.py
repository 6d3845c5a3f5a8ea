"""Typed, frozen configuration read from the one TOML file (dendrite-lite.toml).

Every key has a default, so an empty file plus server.server_name is a working config.
The loader (load_config) validates every key and raises ConfigError naming the key path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Config",
    "ServerConfig",
    "ListenConfig",
    "TlsConfig",
    "DatabaseConfig",
    "RegistrationConfig",
    "FederationConfig",
    "MediaConfig",
    "LimitsConfig",
    "LoggingConfig",
    "ConfigError",
]


class ConfigError(Exception):
    """A config problem, already phrased for the self-hoster: `key.path: what is wrong`."""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    server_name: str = "localhost"
    public_baseurl: str = ""  # "" means https://<server_name>/
    data_dir: Path = Path("./data")
    signing_key_path: Path | None = None  # None means <data_dir>/signing.key


@dataclass(frozen=True, slots=True)
class ListenConfig:
    client: str = "127.0.0.1:8008"
    federation: str = "127.0.0.1:8448"  # "" disables a separate federation listener
    admin_socket: Path | None = None  # None means <data_dir>/admin.sock


@dataclass(frozen=True, slots=True)
class TlsConfig:
    mode: str = "proxy"  # acme | files | proxy
    cert_path: Path | None = None
    key_path: Path | None = None
    acme_directory: str = "https://acme-v02.api.letsencrypt.org/directory"
    acme_email: str = ""


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    path: Path | None = None  # None means <data_dir>/homeserver.db
    synchronous: str = "FULL"  # OFF | NORMAL | FULL | EXTRA
    readers: int = 4


@dataclass(frozen=True, slots=True)
class RegistrationConfig:
    mode: str = "closed"  # closed | open | token
    shared_secret: str = ""
    allow_guests: bool = False


@dataclass(frozen=True, slots=True)
class FederationConfig:
    enabled: bool = True
    verify_tls: bool = True
    ca_file: Path | None = None
    trusted_key_servers: tuple[str, ...] = ("matrix.org",)


@dataclass(frozen=True, slots=True)
class MediaConfig:
    max_upload_bytes: int = 50 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    max_request_bytes: int = 1024 * 1024


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: str = "info"  # debug | info | warning | error


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    listen: ListenConfig = field(default_factory=ListenConfig)
    tls: TlsConfig = field(default_factory=TlsConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    registration: RegistrationConfig = field(default_factory=RegistrationConfig)
    federation: FederationConfig = field(default_factory=FederationConfig)
    media: MediaConfig = field(default_factory=MediaConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    source_path: Path | None = None  # the file this was read from, for messages

    # Derived paths: one place decides where things live inside data_dir.
    @property
    def signing_key_path(self) -> Path:
        return self.server.signing_key_path or self.server.data_dir / "signing.key"

    @property
    def database_path(self) -> Path:
        return self.database.path or self.server.data_dir / "homeserver.db"

    @property
    def admin_socket_path(self) -> Path:
        return self.listen.admin_socket or self.server.data_dir / "admin.sock"

    @property
    def public_baseurl(self) -> str:
        return self.server.public_baseurl or f"https://{self.server.server_name}/"
