"""Typed, frozen configuration read from the one TOML file (dendrite-lite.toml).

Every key has a default, so an empty file plus server.server_name is a working config.
The loader (load_config) validates every key and raises ConfigError naming the key path.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import ipaddress
import json
import re
import tomllib
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "Config",
    "AdminConfig",
    "BackupConfig",
    "AppservicesConfig",
    "TurnConfig",
    "CallsConfig",
    "ServerConfig",
    "ListenConfig",
    "TlsConfig",
    "DatabaseConfig",
    "RegistrationConfig",
    "LoginConfig",
    "EmailConfig",
    "CasConfig",
    "OidcProviderConfig",
    "FederationConfig",
    "PushConfig",
    "IdentityServerConfig",
    "MediaConfig",
    "LimitsConfig",
    "LoggingConfig",
    "MetricsConfig",
    "RatelimitConfig",
    "ConfigError",
    "load_config",
    "parse_config",
    "check_option",
    "is_valid_server_name",
    "split_address",
    "split_host",
    "SECTION_TYPES",
]


class ConfigError(Exception):
    """A config problem, already phrased for the self-hoster: `key.path: what is wrong`."""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    server_name: str = "localhost"
    public_baseurl: str = ""  # "" means https://<server_name>/
    data_dir: Path = Path("./data")
    signing_key_path: Path | None = None  # None means <data_dir>/signing.key
    event_loop: str = "uvloop"  # uvloop | asyncio (event_loop.py)
    # New rooms' version when /createRoom names none (events/room_versions.py; the spec's advice).
    default_room_version: str = "12"
    # This machine's address on the internet as `init` found it ("" = unknown): doctor checks
    # that ports 80/443/8448 answer there.
    public_ip: str = ""


@dataclass(frozen=True, slots=True)
class ListenConfig:
    """Listener addresses, and whether each listener speaks TLS.

    The TLS switches are flat booleans next to the addresses (`client_tls`, `federation_tls`)
    rather than per-listener tables (`[listen.client] address = ..., tls = ...`): a table would
    change the type of `listen.client`, so every existing file (where it is a string) would need
    rewriting or a second accepted shape. Unset (None) means "what tls.mode implies", which is
    what both listeners did before the switches existed: TLS with "files"/"acme", plain with
    "proxy". Read the resolved values from Config.client_tls / Config.federation_tls.
    """

    client: str = "127.0.0.1:8008"
    client_tls: bool | None = None  # None: TLS unless tls.mode = "proxy"
    federation: str = "127.0.0.1:8448"  # "" disables a separate federation listener
    federation_tls: bool | None = None  # None: TLS unless tls.mode = "proxy"
    admin_socket: Path | None = None  # None means <data_dir>/admin.sock
    # tls.mode = "acme" only: the plain-HTTP listener for HTTP-01 challenges, which otherwise
    # redirects to https and serves /.well-known/matrix/*. "" = none (TLS-ALPN-01 instead).
    acme_http: str = "0.0.0.0:80"


@dataclass(frozen=True, slots=True)
class TlsConfig:
    mode: str = "proxy"  # acme | files | proxy
    cert_path: Path | None = None
    key_path: Path | None = None
    acme_directory: str = "https://acme-v02.api.letsencrypt.org/directory"
    acme_email: str = ""
    acme_agree_tos: bool = False  # the CA's terms of service, agreed to in the config or init
    acme_names: tuple[str, ...] = ()  # the certificate's names; () means (server_name,)
    acme_challenge: str = "auto"  # auto | http-01 | tls-alpn-01
    acme_ca_file: Path | None = None  # a CA to trust for the ACME directory (Pebble, a private CA)


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
    # m.login.recaptcha at open registration (users/recaptcha.py); "" keys: no captcha.
    recaptcha_public_key: str = ""
    recaptcha_private_key: str = ""
    recaptcha_siteverify_api: str = "https://www.recaptcha.net/recaptcha/api/siteverify"
    # false: the captcha flow is offered beside the plain one, not instead of it (trying the
    # keys with a client before requiring them; SyTest runs this way, as its register helpers
    # know only m.login.dummy).
    recaptcha_required: bool = True
    # With [email] set up: "optional" offers sign-up with a confirmed email address beside the
    # other flows, "required" asks every new account for one, "off" never asks (users/threepids.py).
    email: str = "optional"  # off | optional | required


@dataclass(frozen=True, slots=True)
class LoginConfig:
    get_token: bool = False  # POST /login/get_token (one-time tokens for m.login.token)


@dataclass(frozen=True, slots=True)
class EmailConfig:
    """Outgoing email (users/email_sender.py): the links that confirm an address at sign-up,
    when adding it to an account, and for a forgotten password. Off while smtp_host is ""."""

    smtp_host: str = ""
    smtp_port: int = 0  # 0: the usual port of smtp_tls (25 none, 587 starttls, 465 tls)
    smtp_tls: str = "starttls"  # none | starttls | tls (implicit TLS, "SMTPS")
    smtp_user: str = ""  # "" = no SMTP login
    smtp_password: str = ""
    from_address: str = ""  # "" = noreply@<server_name's host>; "Name <addr>" works too
    ca_file: Path | None = None  # trusted for the SMTP server besides the system CAs
    # Email notifications (push/email_notifier.py: the "email" pusher kind): mail about unread
    # messages this long after they arrived, at most one mail per room per throttle window,
    # each room linked in the client at client_base_url. notif_enabled = false refuses them.
    notif_enabled: bool = True
    notif_delay_minutes: float = 10.0
    notif_throttle_minutes: float = 60.0
    client_base_url: str = "https://app.element.io"

    @property
    def enabled(self) -> bool:
        return bool(self.smtp_host)

    @property
    def notifications(self) -> bool:
        """Whether users may set email pushers: mail is set up and not turned off."""
        return self.enabled and self.notif_enabled

    @property
    def port(self) -> int:
        return self.smtp_port or {"none": 25, "starttls": 587, "tls": 465}[self.smtp_tls]


@dataclass(frozen=True, slots=True)
class CasConfig:
    """Single sign-on with a CAS server (users/cas.py): m.login.sso login and the m.login.sso
    stage of user-interactive authentication. Off while server_url is ""."""

    server_url: str = ""  # the CAS server's base URL: /login and /proxyValidate are below it
    display_name: str = "CAS"  # the identity provider's name on clients' SSO button
    # Attribute -> value the CAS server must release for a login to be allowed (e.g. a group).
    # A dict in a frozen dataclass: Config is compared, never hashed.
    required_attributes: dict[str, str] = field(default_factory=dict)
    displayname_attribute: str = "displayName"  # a new account's display name; "" = localpart
    auto_register: bool = True  # a CAS user without an account here gets one at first login
    # Redirect URLs (prefixes) that get their login token at once, without the page asking
    # the user whether to continue to that site.
    trusted_client_urls: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class OidcProviderConfig:
    """One OpenID Connect provider of single sign-on (users/oidc.py), a [[oidc_providers]]
    table. Keys without a default below are required."""

    idp_id: str = ""  # /login/sso/redirect/{idp_id}; the spec's identity provider id grammar
    idp_name: str = ""  # the button's text on clients ("Sign in with ...")
    idp_icon: str = ""  # an mxc:// URI, or "" for none
    issuer: str = ""  # the provider's issuer URL, as its discovery document names it
    client_id: str = ""
    client_secret: str = ""  # or client_secret_file; neither: a public client (PKCE only)
    client_secret_file: Path | None = None
    scopes: tuple[str, ...] = ("openid", "profile")
    discovery: bool = True  # false: the four endpoints below are required
    authorization_endpoint: str = ""
    token_endpoint: str = ""
    userinfo_endpoint: str = ""
    jwks_uri: str = ""
    pkce: bool = True  # S256; off only for a provider that refuses code_challenge
    localpart_claim: str = "preferred_username"
    displayname_claim: str = "name"  # "" = the localpart
    email_claim: str = ""  # e.g. "email": added to a new account's 3PIDs when email_verified
    auto_register: bool = True
    # true: a first sign-in whose localpart is an existing account's signs in as that account
    # (the provider vouches for the name); false: refused with a page naming this key.
    allow_existing_users: bool = False
    # Claim -> value the ID token/userinfo must have (a list claim must contain it).
    required_claims: dict[str, str] = field(default_factory=dict)
    ca_file: Path | None = None  # a private CA (PEM) for the provider's TLS, besides the system's


@dataclass(frozen=True, slots=True)
class FederationConfig:
    enabled: bool = True
    verify_tls: bool = True
    ca_file: Path | None = None
    trusted_key_servers: tuple[str, ...] = ("matrix.org",)
    # Remote rooms heavier than this (Synapse's complexity: state events / 500) are refused, so
    # one user joining #matrix:matrix.org does not stall a small server for hours
    # (federation/room_complexity.py). 10 = 5,000 state events; 0 = no limit.
    max_room_complexity: float = 10.0
    room_complexity_admins_can_join: bool = False


@dataclass(frozen=True, slots=True)
class PushConfig:
    ca_file: Path | None = None  # trusted for push gateways besides the system CAs


@dataclass(frozen=True, slots=True)
class IdentityServerConfig:
    """The identity servers clients name (users/identity_server.py): 3PID binds and unbinds,
    invites by email address."""

    verify_tls: bool = True
    ca_file: Path | None = None  # trusted besides the system CAs
    # Networks identity servers may be on although they are not public (loopback, private...):
    # a client names the host, so by default only public addresses are reached.
    ip_allowlist: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MediaConfig:
    max_upload_bytes: int = 50 * 1024 * 1024
    store_path: Path | None = None  # None means <data_dir>/media
    # Media stored while this is true is served only by the authenticated endpoints
    # (/_matrix/client/v1/media/*), never the legacy /_matrix/media/v3 ones: the spec's freeze
    # of unauthenticated media (content_repo.md), as Synapse's enable_authenticated_media.
    freeze_unauthenticated: bool = True
    # POST /create: ids a user may hold before uploading to them, and for how long.
    max_pending_uploads: int = 5
    pending_upload_expiry_s: int = 24 * 3600
    # Thumbnails are made by at most this many threads at once (each holds one decoded image).
    thumbnail_workers: int = 2
    # Images with more pixels are never decoded (decompression bombs); Synapse's default.
    max_image_pixels: int = 32_000_000
    # URL previews (media/preview.py): off unless the operator turns them on, since they make
    # the server fetch any URL a user names.
    url_preview_enabled: bool = False
    url_preview_max_bytes: int = 10 * 1024 * 1024  # Synapse's max_spider_size
    # Networks previews may reach although they are not public (loopback, private, ...).
    url_preview_ip_allowlist: tuple[str, ...] = ()
    url_preview_dns_server: str = ""  # "host:port"; "" = the system's resolver
    max_user_bytes: int = 0  # per-user quota of uploaded media (media/quota.py); 0 = none
    # Other servers' media nobody here read for this long leaves the cache (media/retention.py);
    # 0 keeps it forever. Our users' uploads are never deleted by it.
    remote_media_lifetime_days: float = 90.0


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    max_request_bytes: int = 1024 * 1024


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: str = "info"  # debug | info | warning | error


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """Prometheus /metrics (metrics.py). Off by default: they tell anyone who can read them
    about the server's traffic and its peers."""

    enabled: bool = False
    # "" serves /metrics on the client listener; "host:port" on a plain-HTTP listener of its own.
    # Never on the federation listener, which faces the internet.
    address: str = ""


@dataclass(frozen=True, slots=True)
class RatelimitConfig:
    """Token buckets (see ratelimit.py): `*_per_second` refill rate, `*_burst` bucket size.

    A rate of 0 turns that limit off (a burst is at least 1: a bucket of 0 tokens would refuse
    everything); `enabled = false` turns them all off (test servers).
    Defaults are Synapse's, so clients see the limits they already cope with.
    """

    enabled: bool = True
    login_per_second: float = 0.003  # per IP and per account: a burst, then one per ~5.5 min
    login_burst: int = 5
    register_per_second: float = 0.17  # per IP
    register_burst: int = 3
    send_per_second: float = 0.2  # per user, room events
    send_burst: int = 10
    upload_per_second: float = 10.0  # per user, media uploads and /create (Synapse's rc_media_create)
    upload_burst: int = 50


@dataclass(frozen=True, slots=True)
class AdminConfig:
    # The admin API on the client listener, for server admins with their access token (admin
    # tools like synadm). The admin unix socket (listen.admin_socket) serves it regardless.
    client_api: bool = True


@dataclass(frozen=True, slots=True)
class BackupConfig:
    # Scheduled backups (backup/schedule.py), made by the running server; None: none scheduled.
    directory: Path | None = None
    interval_hours: float = 24.0
    keep: int = 7  # the newest this many stay; older ones are deleted


@dataclass(frozen=True, slots=True)
class AppservicesConfig:
    """Application services (bridges): their registration files (appservice/registration.py),
    read and checked at start, and how their transactions are retried."""

    registration_files: tuple[Path, ...] = ()
    # A transaction the AS did not take is retried after this, doubling up to retry_max_s.
    retry_initial_s: float = 2.0
    retry_max_s: float = 300.0


@dataclass(frozen=True, slots=True)
class TurnConfig:
    """The TURN server clients use to relay voice and video calls (GET /voip/turnServer).

    With `shared_secret` (coturn's `use-auth-secret` / `static-auth-secret`) every user gets
    credentials of their own that expire after `user_lifetime_s` (turn_credentials.py); a
    static `username`/`password` pair is handed to everyone instead when the TURN server has
    no shared secret."""

    uris: tuple[str, ...] = ()  # () = no TURN server: calls only work where peers reach each other
    shared_secret: str = ""
    username: str = ""
    password: str = ""
    user_lifetime_s: int = 86400
    allow_guests: bool = True


@dataclass(frozen=True, slots=True)
class CallsConfig:
    """Element Call / MatrixRTC: the LiveKit SFU clients are sent to (MSC4143 RTC transports) and
    delayed events (MSC4140), which end a crashed client's call membership on their own."""

    # lk-jwt-service's URL; "" = no SFU: no rtc_foci in the well-known, transports 404.
    livekit_service_url: str = ""
    # The longest delay a delayed event may ask for; 0 turns delayed events off. A day covers a
    # call's few-second heartbeats and a message scheduled for later today, while bounding how
    # long a forgotten schedule is kept (Synapse has no default; its docs suggest 24h).
    max_event_delay_s: int = 86400


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    listen: ListenConfig = field(default_factory=ListenConfig)
    tls: TlsConfig = field(default_factory=TlsConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    registration: RegistrationConfig = field(default_factory=RegistrationConfig)
    login: LoginConfig = field(default_factory=LoginConfig)
    email: EmailConfig = field(default_factory=EmailConfig)
    cas: CasConfig = field(default_factory=CasConfig)
    federation: FederationConfig = field(default_factory=FederationConfig)
    push: PushConfig = field(default_factory=PushConfig)
    identity_server: IdentityServerConfig = field(default_factory=IdentityServerConfig)
    media: MediaConfig = field(default_factory=MediaConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    ratelimit: RatelimitConfig = field(default_factory=RatelimitConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    backup: BackupConfig = field(default_factory=BackupConfig)
    appservices: AppservicesConfig = field(default_factory=AppservicesConfig)
    turn: TurnConfig = field(default_factory=TurnConfig)
    calls: CallsConfig = field(default_factory=CallsConfig)
    # [[oidc_providers]]: an array of tables, so not one of SECTION_TYPES.
    oidc_providers: tuple[OidcProviderConfig, ...] = ()
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
    def media_path(self) -> Path:
        """The media store (media/store.py): content-addressed files and their temporary files."""
        return self.media.store_path or self.server.data_dir / "media"

    @property
    def acme_dir(self) -> Path:
        """ACME account key, certificates and renewal state (tls.mode = "acme")."""
        return self.server.data_dir / "acme"

    @property
    def acme_names(self) -> tuple[str, ...]:
        """The names the ACME certificate covers: tls.acme_names, else the server name's host."""
        return self.tls.acme_names or (split_host(self.server.server_name),)

    @property
    def public_baseurl(self) -> str:
        return self.server.public_baseurl or f"https://{self.server.server_name}/"

    @property
    def client_tls(self) -> bool:
        """Whether the client listener speaks TLS (listen.client_tls, else from tls.mode)."""
        return _listener_tls(self.listen.client_tls, self.tls.mode)

    @property
    def federation_tls(self) -> bool:
        """Whether a separate federation listener speaks TLS (listen.federation_tls, else from
        tls.mode). Federation served on the client listener has the client listener's TLS."""
        if not self.listen.federation:
            return self.client_tls
        return _listener_tls(self.listen.federation_tls, self.tls.mode)


def _listener_tls(explicit: bool | None, tls_mode: str) -> bool:
    # Unset keeps the meaning config files had before the per-listener switches: every listener
    # serves the certificate unless a reverse proxy does HTTPS.
    return explicit if explicit is not None else tls_mode != "proxy"


# --- Loading and validation ------------------------------------------------------------------

# Section name -> dataclass, in the order the template writes them.
SECTION_TYPES: dict[str, type] = {
    "server": ServerConfig,
    "listen": ListenConfig,
    "tls": TlsConfig,
    "database": DatabaseConfig,
    "registration": RegistrationConfig,
    "login": LoginConfig,
    "email": EmailConfig,
    "cas": CasConfig,
    "federation": FederationConfig,
    "push": PushConfig,
    "identity_server": IdentityServerConfig,
    "media": MediaConfig,
    "limits": LimitsConfig,
    "logging": LoggingConfig,
    "metrics": MetricsConfig,
    "ratelimit": RatelimitConfig,
    "admin": AdminConfig,
    "backup": BackupConfig,
    "appservices": AppservicesConfig,
    "turn": TurnConfig,
    "calls": CallsConfig,
}


def load_config(path: Path) -> Config:
    """Read and validate the TOML file at `path`; relative paths in it are relative to its dir."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: config file not found (create one with `dendrite-lite init`)"
        ) from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config file: {e.strerror or e}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: config file is not valid UTF-8") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(_describe_toml_error(path, e)) from None
    return parse_config(data, path)


def _describe_toml_error(path: Path, e: tomllib.TOMLDecodeError) -> str:
    # tomllib (3.11) puts the position only into the message: "Invalid value (at line 2, column 5)".
    msg = str(e)
    m = re.fullmatch(r"(.*) \(at line (\d+), column (\d+)\)", msg, re.S)
    if m:
        return f"{path}, line {m[2]}, column {m[3]}: invalid TOML: {m[1]}"
    m = re.fullmatch(r"(.*) \(at end of document\)", msg, re.S)
    if m:
        return f"{path}, at end of file: invalid TOML: {m[1]}"
    return f"{path}: invalid TOML: {msg}"


def parse_config(data: Mapping[str, Any], source: Path | None = None) -> Config:
    """Validate a parsed TOML document into a Config.

    Relative paths are resolved against the directory of `source` (the config file); without a
    source they stay as written.
    """
    base = source.resolve().parent if source is not None else None
    _reject_unknown("", data, {**SECTION_TYPES, OIDC_PROVIDERS: None}, "section", "sections")
    sections: dict[str, Any] = {OIDC_PROVIDERS: _oidc_providers(data.get(OIDC_PROVIDERS, []), base)}
    for name, cls in SECTION_TYPES.items():
        table = data.get(name, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{name}: expected a table ([{name}]), got {_show(table)}")
        sections[name] = _parse_section(name, cls, table, base)
    config = Config(**sections, source_path=source.resolve() if source is not None else None)
    _check_cross_field(config)
    return config


def check_option(section: str, key: str, value: Any) -> Any:
    """Validate one option on its own (no cross-field rules), e.g. a wizard's answer."""
    return _VALIDATORS[section][key](f"{section}.{key}", value)


def _parse_section(name: str, cls: type, table: Mapping[str, Any], base: Path | None) -> Any:
    validators = _VALIDATORS[name]
    _reject_unknown(f"{name}.", table, validators, "key", f"keys in [{name}]")
    values = {k: validators[k](f"{name}.{k}", v) for k, v in table.items()}
    section = cls(**values)
    # Relative paths (given or default, like data_dir = "./data") are relative to the file.
    if base is not None:
        for f in dataclasses.fields(section):
            v = getattr(section, f.name)
            if isinstance(v, Path) and not v.is_absolute():
                section = dataclasses.replace(section, **{f.name: base / v})
            elif isinstance(v, tuple) and v and all(isinstance(p, Path) for p in v):
                paths = tuple(p if p.is_absolute() else base / p for p in v)
                section = dataclasses.replace(section, **{f.name: paths})
    return section


def _reject_unknown(
    prefix: str, table: Mapping[str, Any], known: Mapping[str, Any], what: str, plural: str
) -> None:
    for key in table:
        if key in known:
            continue
        hint = difflib.get_close_matches(key, list(known), n=1)
        did_you_mean = f'did you mean "{hint[0]}"? ' if hint else ""
        raise ConfigError(
            f"{prefix}{key}: unknown {what}; {did_you_mean}(valid {plural}: {', '.join(known)})"
        )


def _check_cross_field(config: Config) -> None:
    tls = config.tls
    if tls.mode == "files":
        for key in ("cert_path", "key_path"):
            if getattr(tls, key) is None:
                raise ConfigError(
                    f'tls.{key}: required when tls.mode = "files" '
                    f"(the PEM certificate chain and private key to serve)"
                )
    if tls.mode == "acme":
        _check_acme(config)
    _check_listener_tls(config)
    _check_metrics(config)
    _check_recaptcha(config)
    _check_email(config)
    _check_appservices(config)
    _check_turn(config)
    _check_cas(config)
    _check_oidc(config)


def _check_cas(config: Config) -> None:
    cas = config.cas
    if cas.server_url:
        return
    for key in ("required_attributes", "trusted_client_urls"):
        if getattr(cas, key):
            raise ConfigError(
                f'cas.{key}: set, but cas.server_url is "" (CAS sign-in is off); set '
                'cas.server_url to your CAS server, e.g. "https://cas.example.org/cas"'
            )


OIDC_PROVIDERS = "oidc_providers"
# client-server-api §Login, identity_providers' id: 1-255 of these characters.
_IDP_ID_RE = re.compile(r"[A-Za-z0-9._~-]{1,255}")


def _oidc_providers(raw: Any, base: Path | None) -> tuple[OidcProviderConfig, ...]:
    _expect(OIDC_PROVIDERS, raw, list, "an array of tables ([[oidc_providers]])")
    providers = []
    for i, table in enumerate(raw):
        name = f"{OIDC_PROVIDERS}[{i}]"
        if not isinstance(table, dict):
            raise ConfigError(f"{name}: expected a table, got {_show(table)}")
        _reject_unknown(f"{name}.", table, _OIDC_VALIDATORS, "key", f"keys in [[{OIDC_PROVIDERS}]]")
        values = {k: _OIDC_VALIDATORS[k](f"{name}.{k}", v) for k, v in table.items()}
        for k, v in values.items():
            if isinstance(v, Path) and base is not None and not v.is_absolute():
                values[k] = base / v
        providers.append(OidcProviderConfig(**values))
    return tuple(providers)


def _check_oidc(config: Config) -> None:
    seen = {"cas"} if config.cas.server_url else set()
    for i, p in enumerate(config.oidc_providers):
        name = f"{OIDC_PROVIDERS}[{i}]"
        for key in ("idp_id", "idp_name", "issuer", "client_id"):
            if not getattr(p, key):
                raise ConfigError(f"{name}.{key}: required for each OpenID Connect provider")
        if p.idp_id in seen:
            taken = "by [cas]" if p.idp_id == "cas" and config.cas.server_url else "twice"
            raise ConfigError(f"{name}.idp_id: {_show(p.idp_id)} is used {taken}; ids must differ")
        seen.add(p.idp_id)
        if p.client_secret and p.client_secret_file is not None:
            raise ConfigError(f"{name}.client_secret_file: set beside client_secret; keep one")
        if "openid" not in p.scopes:
            raise ConfigError(f'{name}.scopes: must include "openid" (got {list(p.scopes)})')
        if not p.discovery:
            for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not getattr(p, key):
                    raise ConfigError(f"{name}.{key}: required when discovery = false")
        for key in ("issuer", "authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri"):
            url = getattr(p, key)
            if url and not url.startswith("https://"):
                # OAuth 2.0 sends the code and the client secret over these: TLS only.
                raise ConfigError(f"{name}.{key}: {_show(url)} must be an https:// URL")


def _idp_id(key: str, value: Any) -> str:
    if not _IDP_ID_RE.fullmatch(_string(key, value)):
        raise ConfigError(
            f"{key}: {_show(value)} is not an identity provider id (1-255 of A-Z a-z 0-9 . _ ~ -, "
            'e.g. "authelia")'
        )
    return value


def _mxc_uri(key: str, value: Any) -> str:
    if _string(key, value) and not re.fullmatch(r"mxc://[^/\s]+/[A-Za-z0-9_-]+", value):
        raise ConfigError(f'{key}: {_show(value)} is not an mxc:// URI (e.g. "mxc://example.org/abc")')
    return value


def _scopes(key: str, value: Any) -> tuple[str, ...]:
    _expect(key, value, list, 'a list of scopes (e.g. ["openid", "profile"])')
    for i, item in enumerate(value):
        if not re.fullmatch(r"[\x21\x23-\x5b\x5d-\x7e]+", _string(f"{key}[{i}]", item)):
            raise ConfigError(f"{key}[{i}]: {_show(item)} is not a scope (RFC 6749 §3.3)")
    return tuple(value)


def _check_turn(config: Config) -> None:
    turn = config.turn
    static = bool(turn.username or turn.password)
    if not turn.uris:
        if turn.shared_secret or static:
            raise ConfigError(
                'turn.uris: empty, but credentials are set; list the TURN server\'s URIs, e.g. '
                '["turn:turn.example.org:3478?transport=udp"]'
            )
        return
    if turn.shared_secret and static:
        raise ConfigError(
            "turn.shared_secret: set either shared_secret (coturn's static-auth-secret) or "
            "username and password, not both"
        )
    if static and not (turn.username and turn.password):
        missing = "turn.password" if turn.username else "turn.username"
        raise ConfigError(f"{missing}: empty, but the other half of the static credentials is set")
    if not (turn.shared_secret or static):
        raise ConfigError(
            "turn.shared_secret: empty; a TURN server needs credentials: shared_secret "
            "(coturn's static-auth-secret) or username and password"
        )


def _check_appservices(config: Config) -> None:
    """Registration files are read here, so `config check` and start-up name a bad one."""
    files = config.appservices.registration_files
    if not files:
        return
    if config.appservices.retry_max_s < config.appservices.retry_initial_s:
        raise ConfigError(
            f"appservices.retry_max_s: {config.appservices.retry_max_s} is less than "
            f"appservices.retry_initial_s ({config.appservices.retry_initial_s})"
        )
    # Imported here: config.py imports nothing of ours at module level (room_versions likewise).
    from dendrite_lite.appservice.registration import RegistrationError, load_registrations

    try:
        load_registrations(files, config.server.server_name)
    except RegistrationError as e:
        raise ConfigError(f"appservices.registration_files: {e}") from None


def _check_acme(config: Config) -> None:
    tls = config.tls
    if not tls.acme_agree_tos:
        raise ConfigError(
            'tls.acme_agree_tos: must be true when tls.mode = "acme": set it to agree to the '
            f"terms of service of the certificate authority at tls.acme_directory "
            f"({_show(tls.acme_directory)}; Let's Encrypt's: https://letsencrypt.org/repository/)"
        )
    if tls.acme_challenge == "http-01" and not config.listen.acme_http:
        raise ConfigError(
            'tls.acme_challenge: "http-01" needs the port-80 listener, but listen.acme_http = "";'
            ' set listen.acme_http = "0.0.0.0:80", or tls.acme_challenge = "tls-alpn-01"'
        )
    alpn = tls.acme_challenge == "tls-alpn-01" or (
        tls.acme_challenge == "auto" and not config.listen.acme_http
    )
    if alpn and not (config.client_tls or config.federation_tls):
        raise ConfigError(
            'tls.acme_challenge: "tls-alpn-01" (what "auto" means with listen.acme_http = "") '
            "is answered on a TLS listener, but listen.client_tls and listen.federation_tls are "
            'both false; set one to true (on port 443), or listen.acme_http = "0.0.0.0:80"'
        )


def _check_listener_tls(config: Config) -> None:
    """TLS on a listener needs a certificate source, and one listener speaks TLS or does not."""
    listen, mode = config.listen, config.tls.mode
    if mode == "proxy":
        for name in ("client", "federation"):
            if getattr(listen, f"{name}_tls") is True:
                raise ConfigError(
                    f'listen.{name}_tls: true needs a certificate, but tls.mode = "proxy" has '
                    f'none (a reverse proxy does HTTPS): set tls.mode = "files" or "acme", or '
                    f"listen.{name}_tls = false"
                )
    if listen.federation and listen.federation != listen.client:
        return  # two listeners, each its own TLS
    if not listen.federation and listen.federation_tls is None:
        return  # no federation listener, nothing said about one: the client listener's TLS
    client_tls = _listener_tls(listen.client_tls, mode)
    federation_tls = _listener_tls(listen.federation_tls, mode)
    if client_tls == federation_tls:
        return
    if listen.federation:
        why = (
            f"listen.client and listen.federation are the same address ({_show(listen.client)}),"
            " so one listener serves both"
        )
    else:
        why = 'listen.federation = "" serves federation on the client listener'
    raise ConfigError(
        f"listen.client_tls, listen.federation_tls: {why} and they must agree; got "
        f"{_describe_tls('client', listen.client_tls, mode)} and "
        f"{_describe_tls('federation', listen.federation_tls, mode)}"
    )


def _check_recaptcha(config: Config) -> None:
    reg = config.registration
    if bool(reg.recaptcha_public_key) == bool(reg.recaptcha_private_key):
        return
    given, missing = (
        ("recaptcha_public_key", "recaptcha_private_key")
        if reg.recaptcha_public_key else ("recaptcha_private_key", "recaptcha_public_key")
    )
    raise ConfigError(
        f"registration.{missing}: empty, but registration.{given} is set; a reCAPTCHA needs both "
        "the site key (public) and the secret key (private) from the reCAPTCHA admin console"
    )


def _check_email(config: Config) -> None:
    email = config.email
    if not email.enabled:
        if config.registration.email == "required":
            raise ConfigError(
                'registration.email: "required" needs outgoing email, but email.smtp_host is '
                'empty; set up [email], or registration.email = "optional" or "off"'
            )
        for key in ("smtp_user", "smtp_password", "from_address"):
            if getattr(email, key):
                raise ConfigError(
                    f"email.smtp_host: empty, but email.{key} is set; name the SMTP server that "
                    'sends this server\'s mail (e.g. "smtp.example.org"), or remove the [email] keys'
                )
        return
    if bool(email.smtp_user) != bool(email.smtp_password):
        given, missing = (
            ("smtp_user", "smtp_password") if email.smtp_user else ("smtp_password", "smtp_user")
        )
        raise ConfigError(f"email.{missing}: empty, but email.{given} is set; a login needs both")
    if email.smtp_password and email.smtp_tls == "none" and not _is_loopback(email.smtp_host):
        raise ConfigError(
            f'email.smtp_tls: "none" would send smtp_password unencrypted to '
            f'{_show(email.smtp_host)}; use "starttls" (usually port 587) or "tls" (port 465)'
        )


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host.lower() == "localhost"


def _check_metrics(config: Config) -> None:
    """/metrics stays off the federation listener (the client listener too when it serves
    federation: that one faces other servers), and an address means it is wanted."""
    metrics, listen = config.metrics, config.listen
    if metrics.address and not metrics.enabled:
        raise ConfigError(
            f"metrics.address: {_show(metrics.address)} is set but metrics.enabled = false; set "
            'metrics.enabled = true to serve /metrics there, or metrics.address = ""'
        )
    if not metrics.enabled:
        return
    shared = not listen.federation or listen.federation == listen.client
    if not metrics.address and shared and config.federation.enabled:
        why = (
            'listen.federation = ""' if not listen.federation
            else f"listen.federation = listen.client ({_show(listen.client)})"
        )
        raise ConfigError(
            f"metrics.address: the client listener also serves federation ({why}), so /metrics "
            'there would be public; give metrics a listener of its own, e.g. metrics.address = '
            '"127.0.0.1:9092"'
        )
    for key in ("client", "federation", "acme_http"):
        taken = getattr(listen, key)
        if metrics.address and metrics.address == taken and not taken.endswith(":0"):
            raise ConfigError(
                f"metrics.address: {_show(metrics.address)} is listen.{key}'s address; metrics "
                'need their own (e.g. "127.0.0.1:9092"), or "" to be served on the client listener'
            )


def _describe_tls(name: str, explicit: bool | None, mode: str) -> str:
    if explicit is not None:
        return f"listen.{name}_tls = {_show(explicit)}"
    implied = _show(_listener_tls(None, mode))
    return f"listen.{name}_tls unset ({implied} from tls.mode = {_show(mode)})"


# --- Value validators: (key path, TOML value) -> Python value, or ConfigError ---------------

Validator = Callable[[str, Any], Any]
_T = TypeVar("_T")


def _show(value: Any) -> str:
    """Render a TOML value the way the self-hoster wrote it, for error messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, (datetime.date, datetime.time)):
        return f"a date/time ({value.isoformat()})"
    return repr(value)


def _expect(key: str, value: Any, kind: type[_T], description: str) -> _T:
    # bool is an int subclass in Python; TOML keeps them apart, and so do we.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{key}: expected {description}, got {_show(value)}")
    return value


def _string(key: str, value: Any) -> str:
    return _expect(key, value, str, "a string")


def _boolean(key: str, value: Any) -> bool:
    return _expect(key, value, bool, "true or false")


def _int_range(low: int, high: int | None = None) -> Validator:
    def check(key: str, raw: Any) -> int:
        value = _expect(key, raw, int, "an integer")
        if value < low or (high is not None and value > high):
            bounds = f"{low}-{high}" if high is not None else f"at least {low}"
            raise ConfigError(f"{key}: {value} is out of range ({bounds})")
        return value

    return check


def _non_negative_float(key: str, raw: Any) -> float:
    # TOML writes 1 and 1.0 differently; a rate may be either.
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise ConfigError(f"{key}: expected a number, got {_show(raw)}")
    if raw < 0:
        raise ConfigError(f"{key}: {raw} is out of range (0 or more; 0 turns this limit off)")
    return float(raw)


def _positive_float(key: str, raw: Any) -> float:
    value = _non_negative_float(key, raw)
    if value == 0:
        raise ConfigError(f"{key}: must be more than 0")
    return value


def _burst(key: str, raw: Any) -> int:
    # A bucket of 0 tokens would refuse every request, not allow them all (ratelimit.py), so a
    # burst is at least 1 and the way to turn a limit off is its rate: point there.
    value = _expect(key, raw, int, "an integer")
    if value < 1:
        rate_key = key.removesuffix("_burst") + "_per_second"
        raise ConfigError(
            f"{key}: {value} is out of range (at least 1: the requests allowed at once;"
            f" to turn this limit off, set {rate_key} = 0)"
        )
    return value


def _room_version(key: str, raw: Any) -> str:
    # The one list of versions we implement is room_versions.py (pure, importing nothing of
    # ours), imported here rather than copied so a new version needs no second edit.
    from dendrite_lite.events.room_versions import KNOWN_ROOM_VERSIONS

    if isinstance(raw, int) and not isinstance(raw, bool):
        raise ConfigError(f'{key}: expected a string, got {raw} (room versions are strings: "{raw}")')
    value = _string(key, raw)
    if value not in KNOWN_ROOM_VERSIONS:
        known = ", ".join(f'"{v}"' for v in KNOWN_ROOM_VERSIONS)
        raise ConfigError(
            f"{key}: {_show(value)} is not a room version this server supports ({known})"
        )
    return value


def _choice(*choices: str, upper: bool = False) -> Validator:
    def check(key: str, raw: Any) -> str:
        value = _string(key, raw)
        normal = value.upper() if upper else value.lower()
        if normal not in choices:
            raise ConfigError(f"{key}: {_show(value)} is not one of: {', '.join(choices)}")
        return normal

    return check


def _path(key: str, value: Any) -> Path:
    if not _string(key, value):
        raise ConfigError(f"{key}: expected a path, got an empty string")
    return Path(value).expanduser()


def _optional_path(key: str, value: Any) -> Path | None:
    # "" means "use the default", so a template can show the key without choosing a path.
    return _path(key, value) if _string(key, value) else None


def _url(example: str, *, optional: bool = False) -> Validator:
    def check(key: str, raw: Any) -> str:
        value = _string(key, raw)
        if optional and value == "":
            return ""
        parts = urllib.parse.urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment:
            raise ConfigError(f'{key}: {_show(value)} is not an http(s) URL (e.g. "{example}")')
        return value

    return check


def _url_to_extend(example: str) -> Validator:
    """An optional http(s) URL clients append paths to, so without a query string."""

    def check(key: str, value: Any) -> str:
        url: str = _url(example, optional=True)(key, value)
        if url and urllib.parse.urlsplit(url).query:
            raise ConfigError(f"{key}: {_show(value)} must not have a query string")
        return url

    return check


def _base_url(key: str, value: Any) -> str:
    url = _url_to_extend("https://matrix.example.org/")(key, value)
    # Clients append API paths to it; one trailing slash keeps joins unambiguous.
    return url if not url or url.endswith("/") else url + "/"


def _client_base_url(key: str, value: Any) -> str:
    # Room links append "/#/room/<room id>": no trailing slash, so the join stays single.
    url: str = _url("https://app.element.io")(key, value)
    return url.rstrip("/")


def _cas_server_url(key: str, value: Any) -> str:
    # /login and /proxyValidate are appended: no trailing slash, so the joins stay single.
    url: str = _url_to_extend("https://cas.example.org/cas")(key, value)
    return url.rstrip("/")


def _non_empty_string(key: str, value: Any) -> str:
    if not _string(key, value).strip():
        raise ConfigError(f"{key}: must not be empty")
    return value


def _string_table(key: str, value: Any) -> dict[str, str]:
    _expect(key, value, dict, 'a table of strings (e.g. { memberOf = "matrix-users" })')
    for name, item in value.items():
        _string(f"{key}.{name}", item)
    return dict(value)


def _url_prefixes(key: str, value: Any) -> tuple[str, ...]:
    _expect(key, value, list, "a list of URL prefixes")
    prefixes = []
    for i, raw in enumerate(value):
        prefix = _string(f"{key}[{i}]", raw)
        parts = urllib.parse.urlsplit(prefix)
        web = parts.scheme in ("http", "https")
        # A web prefix must reach the path: "https://app.example.org" would also be a prefix
        # of "https://app.example.org.evil.com/".
        if not re.match(r"[A-Za-z][A-Za-z0-9+.-]*:.", prefix) or (
            web and not (parts.hostname and parts.path.startswith("/"))
        ):
            raise ConfigError(
                f'{key}[{i}]: {_show(prefix)} is not a URL prefix with a path (e.g. '
                '"https://element.example.org/" or an app\'s "im.fluffychat://login")'
            )
        prefixes.append(prefix)
    return tuple(prefixes)


def _email(key: str, raw: Any) -> str:
    value = _string(key, raw)
    if value and not re.fullmatch(r"[^@\s]+@[^@\s]+", value):
        raise ConfigError(f"{key}: {_show(value)} is not an email address")
    return value


def _mailbox(key: str, raw: Any) -> str:
    """An email address, or "Display Name <address>" (a From: header)."""
    value = _string(key, raw)
    if value:
        address = value.rpartition("<")[2].removesuffix(">") if value.endswith(">") else value
        if "\n" in value or "\r" in value or not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+", address):
            raise ConfigError(
                f'{key}: {_show(value)} is not an email address (e.g. "matrix@example.org" or '
                '"Family Matrix <matrix@example.org>")'
            )
    return value


def _optional_host(key: str, raw: Any) -> str:
    value = _string(key, raw)
    if value and not _is_valid_host(value.lower()):
        raise ConfigError(
            f'{key}: {_show(value)} is not a host name or IP address (e.g. "smtp.example.org"; '
            "the port goes in its own key)"
        )
    return value


_SERVER_NAME_HELP = "hostname or IP literal, optional :port"


def _server_name(key: str, raw: Any) -> str:
    value = _string(key, raw)
    if not is_valid_server_name(value):
        raise ConfigError(f"{key}: {_show(value)} is not a valid server name ({_SERVER_NAME_HELP})")
    return value


def _server_names(key: str, value: Any) -> tuple[str, ...]:
    _expect(key, value, list, "a list of server names")
    return tuple(_server_name(f"{key}[{i}]", v) for i, v in enumerate(value))


def _hostnames(key: str, value: Any) -> tuple[str, ...]:
    # Certificates name DNS hosts: no port, and no IP literal (ACME CAs do not issue for those).
    _expect(key, value, list, "a list of host names")
    names = []
    for i, raw in enumerate(value):
        name = _string(f"{key}[{i}]", raw).lower()
        if not _is_valid_host(name) or name.startswith("[") or _IPV4_SHAPE_RE.fullmatch(name):
            raise ConfigError(f"{key}[{i}]: {_show(raw)} is not a DNS host name (e.g. matrix.example.org)")
        names.append(name)
    return tuple(names)


def _optional_ip(key: str, raw: Any) -> str:
    value = _string(key, raw)
    if value:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ConfigError(f"{key}: {_show(value)} is not an IP address (or \"\" for unknown)") from None
    return value


def _address(key: str, raw: Any) -> str:
    value = _string(key, raw)
    split_address(value, key)
    return value


def _optional_address(key: str, value: Any) -> str:
    # "" turns a listener off (e.g. no separate federation port behind a shared 443).
    return _address(key, value) if _string(key, value) else ""


def _paths(key: str, value: Any) -> tuple[Path, ...]:
    _expect(key, value, list, "a list of paths")
    return tuple(_path(f"{key}[{i}]", v) for i, v in enumerate(value))


def _turn_uris(key: str, value: Any) -> tuple[str, ...]:
    _expect(key, value, list, "a list of TURN URIs")
    uris = []
    for i, raw in enumerate(value):
        uri = _string(f"{key}[{i}]", raw)
        # RFC 7064/7065: turn:host[:port][?transport=udp|tcp], turns: for TLS, stun: too.
        if not re.fullmatch(r"(turns?|stuns?):[^\s/?#]+(\?transport=(udp|tcp))?", uri):
            raise ConfigError(
                f'{key}[{i}]: {_show(uri)} is not a TURN URI (e.g. '
                f'"turn:turn.example.org:3478?transport=udp" or "turns:turn.example.org:5349")'
            )
        uris.append(uri)
    return tuple(uris)


def _ip_networks(key: str, value: Any) -> tuple[str, ...]:
    _expect(key, value, list, "a list of IP networks")
    networks = []
    for i, raw in enumerate(value):
        text = _string(f"{key}[{i}]", raw)
        try:
            networks.append(str(ipaddress.ip_network(text, strict=False)))
        except ValueError:
            raise ConfigError(
                f'{key}[{i}]: {_show(text)} is not an IP network (e.g. "192.168.1.0/24" or "::1")'
            ) from None
    return tuple(networks)


_VALIDATORS: dict[str, dict[str, Validator]] = {
    "server": {
        "server_name": _server_name,
        "public_baseurl": _base_url,
        "data_dir": _path,
        "signing_key_path": _optional_path,
        "event_loop": _choice("uvloop", "asyncio"),
        "default_room_version": _room_version,
        "public_ip": _optional_ip,
    },
    "listen": {
        "client": _address,
        "client_tls": _boolean,
        "federation": _optional_address,
        "federation_tls": _boolean,
        "admin_socket": _optional_path,
        "acme_http": _optional_address,
    },
    "tls": {
        "mode": _choice("acme", "files", "proxy"),
        "cert_path": _optional_path,
        "key_path": _optional_path,
        "acme_directory": _url("https://acme-v02.api.letsencrypt.org/directory"),
        "acme_email": _email,
        "acme_agree_tos": _boolean,
        "acme_names": _hostnames,
        "acme_challenge": _choice("auto", "http-01", "tls-alpn-01"),
        "acme_ca_file": _optional_path,
    },
    "database": {
        "path": _optional_path,
        "synchronous": _choice("OFF", "NORMAL", "FULL", "EXTRA", upper=True),
        "readers": _int_range(1, 32),
    },
    "registration": {
        "mode": _choice("closed", "open", "token"),
        "shared_secret": _string,
        "allow_guests": _boolean,
        "recaptcha_public_key": _string,
        "recaptcha_private_key": _string,
        "recaptcha_siteverify_api": _url("https://www.recaptcha.net/recaptcha/api/siteverify"),
        "recaptcha_required": _boolean,
        "email": _choice("off", "optional", "required"),
    },
    "login": {"get_token": _boolean},
    "email": {
        "smtp_host": _optional_host,
        "smtp_port": _int_range(0, 65535),
        "smtp_tls": _choice("none", "starttls", "tls"),
        "smtp_user": _string,
        "smtp_password": _string,
        "from_address": _mailbox,
        "ca_file": _optional_path,
        "notif_enabled": _boolean,
        "notif_delay_minutes": _non_negative_float,
        "notif_throttle_minutes": _non_negative_float,
        "client_base_url": _client_base_url,
    },
    "cas": {
        "server_url": _cas_server_url,
        "display_name": _non_empty_string,
        "required_attributes": _string_table,
        "displayname_attribute": _string,
        "auto_register": _boolean,
        "trusted_client_urls": _url_prefixes,
    },
    "federation": {
        "enabled": _boolean,
        "verify_tls": _boolean,
        "ca_file": _optional_path,
        "trusted_key_servers": _server_names,
        "max_room_complexity": _non_negative_float,
        "room_complexity_admins_can_join": _boolean,
    },
    "push": {"ca_file": _optional_path},
    "identity_server": {
        "verify_tls": _boolean,
        "ca_file": _optional_path,
        "ip_allowlist": _ip_networks,
    },
    "media": {
        "max_upload_bytes": _int_range(1),
        "store_path": _optional_path,
        "freeze_unauthenticated": _boolean,
        "max_pending_uploads": _int_range(1),
        "pending_upload_expiry_s": _int_range(1),
        "thumbnail_workers": _int_range(1, 64),
        "max_image_pixels": _int_range(1),
        "url_preview_enabled": _boolean,
        "url_preview_max_bytes": _int_range(1024),
        "url_preview_ip_allowlist": _ip_networks,
        "url_preview_dns_server": _optional_address,
        "max_user_bytes": _int_range(0),
        "remote_media_lifetime_days": _non_negative_float,
    },
    "limits": {"max_request_bytes": _int_range(1)},
    "logging": {"level": _choice("debug", "info", "warning", "error")},
    "metrics": {"enabled": _boolean, "address": _optional_address},
    "ratelimit": {
        "enabled": _boolean,
        "login_per_second": _non_negative_float,
        "login_burst": _burst,
        "register_per_second": _non_negative_float,
        "register_burst": _burst,
        "send_per_second": _non_negative_float,
        "send_burst": _burst,
        "upload_per_second": _non_negative_float,
        "upload_burst": _burst,
    },
    "admin": {"client_api": _boolean},
    "backup": {
        "directory": _optional_path,
        "interval_hours": _positive_float,
        "keep": _int_range(1),
    },
    "appservices": {
        "registration_files": _paths,
        "retry_initial_s": _positive_float,
        "retry_max_s": _positive_float,
    },
    "turn": {
        "uris": _turn_uris,
        "shared_secret": _string,
        "username": _string,
        "password": _string,
        "user_lifetime_s": _int_range(60),
        "allow_guests": _boolean,
    },
    "calls": {
        # Element Call appends /sfu/get (lk-jwt-service's paths) to it.
        "livekit_service_url": _url_to_extend("https://livekit-jwt.example.org"),
        "max_event_delay_s": _int_range(0),
    },
}

_OIDC_VALIDATORS: dict[str, Validator] = {
    "idp_id": _idp_id,
    "idp_name": _non_empty_string,
    "idp_icon": _mxc_uri,
    "issuer": _url("https://auth.example.org"),
    "client_id": _non_empty_string,
    "client_secret": _string,
    "client_secret_file": _optional_path,
    "scopes": _scopes,
    "discovery": _boolean,
    "authorization_endpoint": _url("https://auth.example.org/authorize", optional=True),
    "token_endpoint": _url("https://auth.example.org/token", optional=True),
    "userinfo_endpoint": _url("https://auth.example.org/userinfo", optional=True),
    "jwks_uri": _url("https://auth.example.org/jwks.json", optional=True),
    "pkce": _boolean,
    "localpart_claim": _non_empty_string,
    "displayname_claim": _string,
    "email_claim": _string,
    "auto_register": _boolean,
    "allow_existing_users": _boolean,
    "required_claims": _string_table,
    "ca_file": _optional_path,
}


# --- Server names and listener addresses -----------------------------------------------------

_SERVER_NAME_RE = re.compile(r"(\[[0-9A-Fa-f:.]{2,45}\]|[0-9A-Za-z.-]{1,255})(?::([0-9]{1,5}))?")
_IPV4_SHAPE_RE = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")


def is_valid_server_name(name: str) -> bool:
    """The server_name grammar of content/appendices.md §Server Name.

    Beyond the grammar it applies the spec's "must"s (IPv4 parts 0-255, RFC 3513 IPv6) and
    "should"s (DNS labels non-empty, at most 63 characters), and a port must be 1-65535.
    """
    m = _SERVER_NAME_RE.fullmatch(name)
    if m is None:
        return False
    host, port = m[1], m[2]
    if port is not None and not 1 <= int(port) <= 65535:
        return False
    return _is_valid_host(host)


def _is_valid_host(host: str) -> bool:
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return False
        return True
    if _IPV4_SHAPE_RE.fullmatch(host):
        return all(int(part) <= 255 for part in host.split("."))
    if not re.fullmatch(r"[0-9A-Za-z.-]{1,255}", host):
        return False
    return all(0 < len(label) <= 63 for label in host.split("."))


def split_host(server_name: str) -> str:
    """The host part of a valid server name, without its port (brackets kept for IPv6)."""
    m = _SERVER_NAME_RE.fullmatch(server_name)
    return (m[1] if m else server_name).lower()


def split_address(address: str, key: str = "address") -> tuple[str, int]:
    """Split a listener address "host:port" / "[v6]:port" into (host without brackets, port)."""
    host, sep, port = address.rpartition(":")
    if not sep or not host:
        raise ConfigError(
            f'{key}: {_show(address)} is not a valid address (expected "host:port", '
            f'e.g. "127.0.0.1:8008" or "[::1]:8008")'
        )
    if ":" in host and not host.startswith("["):
        raise ConfigError(
            f'{key}: {_show(address)}: put an IPv6 address in brackets, e.g. "[::1]:8008"'
        )
    if not _is_valid_host(host):
        raise ConfigError(f"{key}: {_show(address)} does not start with a valid host name or IP")
    if not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        raise ConfigError(f"{key}: {_show(address)} is not a valid port (1-65535)")
    return host.strip("[]"), int(port)
