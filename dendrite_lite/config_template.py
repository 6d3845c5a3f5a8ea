"""Render a Config as a commented dendrite-lite.toml, the file `dendrite-lite init` writes.

Every option is written with a comment a self-hoster can act on. Options whose value is "use the
default location" (None) are written commented out, showing where that default is, so the file
loads back (load_config) into exactly the Config it was rendered from.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dendrite_lite.config import SECTION_TYPES, Config

__all__ = ["render_config"]

_HEADER = """\
# dendrite-lite configuration, written by `dendrite-lite init`.
#
# Every option has a default; delete a line to go back to it. Relative paths are relative to the
# directory of this file. Check your edits with `dendrite-lite config check`, then restart."""

# One comment per option, keyed "section.key". A test checks every Config field has one.
_COMMENTS: dict[str, str] = {
    "server": "Who this server is and where it keeps its files.",
    "server.server_name": (
        "The domain in your users' IDs (@alice:example.org) and room aliases. It can never be\n"
        "changed later without starting over, so use the domain you want people to see."
    ),
    "server.public_baseurl": (
        "The https:// address where clients and other servers reach this server, if it is not\n"
        "https://<server_name>/ (for example https://matrix.example.org/ with .well-known\n"
        'delegation). "" means https://<server_name>/.'
    ),
    "server.data_dir": (
        "Where the database, media, signing key and admin socket live. Back this directory up."
    ),
    "server.signing_key_path": (
        "The server's ed25519 signing key. Other servers remember it: keep it, and back it up.\n"
        "Default: signing.key in data_dir."
    ),
    "server.event_loop": (
        '"uvloop" or "asyncio" (Python\'s own): uvloop takes about a quarter less CPU per\n'
        "request (a Raspberry Pi feels it) for about 1.8 MB more memory."
    ),
    "server.default_room_version": (
        'The version of new rooms whose creator does not ask for one ("1" to "12"). "12" is what\n'
        "the spec advises; an older one only for servers or clients that cannot join v12 rooms."
    ),
    "server.public_ip": (
        "This machine's public IP address, as `dendrite-lite init` found it. `doctor` checks\n"
        'that ports 80, 443 and 8448 answer there. "" = unknown (those checks are skipped).'
    ),
    "listen": (
        'Network addresses, "host:port" (IPv6 as "[::1]:8008"), and whether each listener\n'
        "speaks HTTPS itself. A common appliance layout: your reverse proxy serves the client\n"
        "API, and other servers reach federation directly with this server's certificate\n"
        '(tls.mode = "files" or "acme"):\n'
        '    client = "127.0.0.1:8008"\n'
        "    client_tls = false\n"
        '    federation = "0.0.0.0:8448"\n'
        "    federation_tls = true"
    ),
    "listen.client": (
        "The client API (Element, FluffyChat, ...). 127.0.0.1 when a reverse proxy forwards to\n"
        'it; "0.0.0.0:443" to face the internet directly with tls.mode = "acme" or "files".'
    ),
    "listen.client_tls": (
        "true: the client listener serves HTTPS with the certificate of tls.mode; false: plain\n"
        'HTTP (for a reverse proxy on this machine). Unset: HTTPS unless tls.mode = "proxy".\n'
        'true needs a certificate, so it is refused with tls.mode = "proxy".'
    ),
    "listen.federation": (
        'The federation API for other Matrix servers (usually port 8448). "" turns this\n'
        "listener off, e.g. when federation shares the client port through .well-known."
    ),
    "listen.federation_tls": (
        "The same for the federation listener. When federation shares the client listener\n"
        '(the same address, or ""), both switches must agree: one listener speaks HTTPS or not.'
    ),
    "listen.admin_socket": (
        "A unix socket for `dendrite-lite tui` and admin commands. Whoever can open it is an\n"
        "admin, so keep data_dir private. Default: admin.sock in data_dir."
    ),
    "listen.acme_http": (
        'With tls.mode = "acme": plain HTTP (port 80) for the certificate authority\'s HTTP-01\n'
        "challenges; every other request is redirected to https, except /.well-known/matrix/*.\n"
        '"" turns it off: certificates then come by TLS-ALPN-01 on the HTTPS listener (port 443).'
    ),
    "tls": "HTTPS certificates.",
    "tls.mode": (
        '"proxy": a reverse proxy (Caddy, nginx, Traefik) handles HTTPS in front of this server.\n'
        '"acme":  get and renew certificates from Let\'s Encrypt by itself (port 80 open, or 443\n'
        "        with tls.acme_challenge = \"tls-alpn-01\"). Until the first one arrives, the TLS\n"
        "        listeners serve a temporary self-signed certificate and the log says why.\n"
        '"files": use the certificate and key files named below (you renew them).'
    ),
    "tls.cert_path": 'PEM certificate chain (full chain), for mode = "files".',
    "tls.key_path": 'PEM private key of that certificate, for mode = "files".',
    "tls.acme_directory": (
        "The ACME directory URL; the default is Let's Encrypt production. To try a setup first,\n"
        "Let's Encrypt staging: https://acme-staging-v02.api.letsencrypt.org/directory"
    ),
    "tls.acme_email": "Where the certificate authority sends expiry warnings (optional).",
    "tls.acme_agree_tos": (
        "true: you agree to the ACME certificate authority's terms of service (Let's Encrypt:\n"
        'https://letsencrypt.org/repository/). Needed for tls.mode = "acme".'
    ),
    "tls.acme_names": (
        "The names on the certificate, e.g. [\"matrix.example.org\"] when .well-known delegates\n"
        "to that host. Each must resolve to this machine. [] means the server name."
    ),
    "tls.acme_challenge": (
        '"http-01" (port 80, listen.acme_http), "tls-alpn-01" (port 443, for when port 80 is\n'
        'blocked) or "auto": http-01 when listen.acme_http is set, else tls-alpn-01.'
    ),
    "tls.acme_ca_file": (
        "A CA certificate (PEM) to trust for the ACME directory's own HTTPS: a private or test CA\n"
        "(Pebble). Default: none (the system's CAs)."
    ),
    "database": "The SQLite database.",
    "database.path": "The database file. Default: homeserver.db in data_dir.",
    "database.synchronous": (
        'How hard SQLite flushes to disk (OFF, NORMAL, FULL, EXTRA). "FULL" means an acknowledged\n'
        'message survives a power cut; "NORMAL" is faster but can lose the last moments.'
    ),
    "database.readers": "Database connections for reading (1-32); 4 suits a Raspberry Pi.",
    "registration": "Who may create an account.",
    "registration.mode": (
        '"closed": only the admin creates accounts (`dendrite-lite create-account`).\n'
        '"token":  people with a registration token from the admin may sign up.\n'
        '"open":   anyone on the internet may sign up (attracts spam bots; not advised).'
    ),
    "registration.shared_secret": (
        "A secret that lets scripts create accounts over the admin registration API\n"
        '(as Synapse\'s register_new_matrix_user does). "" turns that API off.'
    ),
    "registration.allow_guests": "Let people join public rooms as guests without an account.",
    "registration.recaptcha_public_key": (
        'With mode = "open": the reCAPTCHA v2 site key (https://www.google.com/recaptcha/admin)\n'
        "that new users solve before signing up. Needs recaptcha_private_key. \"\" = no captcha.\n"
        "Token, appservice and shared-secret registration never ask for it."
    ),
    "registration.recaptcha_private_key": "The reCAPTCHA secret key that goes with the site key.",
    "registration.recaptcha_siteverify_api": (
        "Where captcha answers are checked: Google's siteverify API (recaptcha.net also works\n"
        "where google.com is blocked)."
    ),
    "registration.recaptcha_required": (
        "false offers the captcha beside plain sign-up instead of requiring it, to try the keys\n"
        "with a client first."
    ),
    "registration.email": (
        'With [email] set up: "optional" lets people sign up with an email address they confirm\n'
        '(beside the other ways), "required" asks every new account for one, "off" never asks.'
    ),
    "login": "How users sign in.",
    "login.get_token": (
        "true lets a signed-in device make a one-time login token for a new device (POST\n"
        "/login/get_token, used to sign in by QR code). Off by default: whoever holds a session\n"
        "could then sign in more devices, each after a password check."
    ),
    "email": (
        "Outgoing email, through your mail provider's SMTP server: people confirm an email\n"
        "address when they sign up or add one in their client's settings, then can sign in\n"
        "with it and reset a forgotten password by email. Off while smtp_host is empty."
    ),
    "email.smtp_host": 'The SMTP server, e.g. "smtp.example.org" ("" = no email).',
    "email.smtp_port": "Its port; 0 = the usual one for smtp_tls (25, 587 or 465).",
    "email.smtp_tls": (
        '"starttls" (port 587, the usual submission port), "tls" (implicit TLS, port 465) or\n'
        '"none" (plain, only for a relay on this machine or your own network).'
    ),
    "email.smtp_user": 'The SMTP login ("" = the server needs none).',
    "email.smtp_password": "Its password (or app password).",
    "email.from_address": (
        'The sender, e.g. "Family Matrix <matrix@example.org>"; your provider may insist on an\n'
        'address it hosts. "" = noreply@<server_name>.'
    ),
    "email.ca_file": (
        "A CA certificate (PEM) to trust for the SMTP server's TLS besides the system's, e.g.\n"
        "a relay on your own network with a private CA. Default: none."
    ),
    "email.notif_enabled": (
        "Email notifications: a user who turns them on in their client (Element: Settings >\n"
        "Notifications) gets a mail about messages still unread after notif_delay_minutes.\n"
        "false refuses them."
    ),
    "email.notif_delay_minutes": "How long a message stays unread before it is mailed.",
    "email.notif_throttle_minutes": (
        "At most one mail per room in this time; later messages wait for the next mail."
    ),
    "email.client_base_url": (
        'The web client the mails link rooms in: <client_base_url>/#/room/<room id>.'
    ),
    "cas": (
        "Single sign-on with a CAS server (Apereo CAS and others): users sign in on its page\n"
        "instead of with a password here, and confirm sensitive actions (removing a device) there\n"
        "too. Clients show a \"Sign in with ...\" button. The CAS server must accept this server's\n"
        "service URL, <public_baseurl>_matrix/client/r0/login/cas/ticket (any query string)."
    ),
    "cas.server_url": (
        'The CAS server\'s base URL, under which it serves /login and /proxyValidate, e.g.\n'
        '"https://cas.example.org/cas". "" turns CAS sign-in off.'
    ),
    "cas.display_name": 'The name clients show on the sign-in button ("Sign in with CAS").',
    "cas.required_attributes": (
        "Attributes the CAS server must release with these exact values for a user to sign in,\n"
        'e.g. { memberOf = "matrix-users" }. {} lets every CAS user in.'
    ),
    "cas.displayname_attribute": (
        "The CAS attribute whose value becomes a new user's display name (\"\" = the user id's\n"
        "localpart). CAS user names become user ids: lower-case, other characters as =xx."
    ),
    "cas.auto_register": (
        "true: a CAS user with no account here gets one at first sign-in; false: only users\n"
        "who already have an account (with the same name) may sign in through CAS."
    ),
    "cas.trusted_client_urls": (
        "After signing in, a page asks the user whether to continue to the app that asked\n"
        "(a link could otherwise hand a login to someone else's site). Apps whose address\n"
        'starts with one of these skip that page, e.g. ["https://element.example.org/"].'
    ),
    "federation": "Talking to other Matrix servers.",
    "federation.enabled": "false keeps this server private: no rooms shared with other servers.",
    "federation.verify_tls": (
        "Check other servers' certificates. Only turn off for a test setup; never in production."
    ),
    "federation.ca_file": (
        "Extra CA certificates (PEM) to trust for other servers, e.g. a test CA. Default: none."
    ),
    "federation.trusted_key_servers": (
        "Servers asked for other servers' signing keys when those cannot be fetched directly."
    ),
    "federation.max_room_complexity": (
        "Rooms on other servers heavier than this are refused (M_RESOURCE_LIMIT_EXCEEDED): joining\n"
        "means downloading and checking a room's whole state, and the biggest public rooms\n"
        "(#matrix:matrix.org: 100,000+ state events) would keep a small server busy for hours.\n"
        "Measured as Synapse does: state events / 500, so 10 = 5,000 state events, plenty for\n"
        "family and community rooms. 0 = no limit."
    ),
    "federation.room_complexity_admins_can_join": (
        "true lets server admins join rooms over max_room_complexity anyway."
    ),
    "push": "Notifications to phones, sent through the push gateway each app names (e.g. Sygnal).",
    "push.ca_file": (
        "Extra CA certificates (PEM) to trust for push gateways besides the system's, e.g. a\n"
        "gateway on your own network with a private CA (or a test CA). Default: none."
    ),
    "identity_server": (
        "Identity servers (e.g. vector.im, matrix.org), which clients name to bind an email\n"
        "address to their account or to invite someone by email."
    ),
    "identity_server.verify_tls": (
        "Check identity servers' certificates. Only turn off for a test setup; never in production."
    ),
    "identity_server.ca_file": (
        "Extra CA certificates (PEM) to trust for identity servers, e.g. a test CA. Default: none."
    ),
    "identity_server.ip_allowlist": (
        'Networks an identity server may be in although they are not public, e.g. ["10.0.0.0/8"]\n'
        "for one on your own network. Clients choose the identity server, so by default only\n"
        "public addresses are reached (not this machine, your router or your LAN)."
    ),
    "media": "Uploaded files (images, videos, attachments).",
    "media.max_upload_bytes": "The largest file a user may upload, in bytes (50 MiB default).",
    "media.store_path": 'Where uploaded files are kept. Default: "media" inside data_dir.',
    "media.freeze_unauthenticated": (
        "true: files uploaded (or fetched from other servers) while this is on are served only to\n"
        "signed-in users (/_matrix/client/v1/media), not by the old unauthenticated\n"
        "/_matrix/media/v3 endpoints. Files stored before it was turned on keep working there."
    ),
    "media.max_pending_uploads": "Upload slots (POST /media/v1/create) a user may hold unused.",
    "media.pending_upload_expiry_s": "How long an unused upload slot stays valid, in seconds.",
    "media.thumbnail_workers": (
        "Thumbnails made at once (threads). Each holds one decoded image in memory."
    ),
    "media.max_image_pixels": (
        "Images with more pixels are not thumbnailed (protects against decompression bombs)."
    ),
    "media.url_preview_enabled": (
        "Link previews (GET /media/preview_url): the server fetches the pages users name, so\n"
        "they are off unless turned on here. Private, loopback and other non-public addresses\n"
        "are never fetched, unless listed in url_preview_ip_allowlist."
    ),
    "media.url_preview_max_bytes": "The largest page or image a preview fetches, in bytes.",
    "media.url_preview_ip_allowlist": (
        'Networks previews may fetch from although they are not public, e.g. ["192.168.1.0/24"]\n'
        "for an intranet wiki."
    ),
    "media.max_user_bytes": (
        "How many bytes of media each user may upload in all (0 = no quota). Uploads past it\n"
        "are refused (403); `dendrite-lite media` commands free space."
    ),
    "media.url_preview_dns_server": (
        'A DNS server ("host:port") previews resolve names with; "" = the system\'s resolver.'
    ),
    "limits": "Protection against oversized requests.",
    "limits.max_request_bytes": "The largest non-upload request body accepted, in bytes.",
    "logging": "What the server writes to its log (stderr, or the journal under systemd).",
    "logging.level": '"debug", "info", "warning" or "error".',
    "metrics": (
        "Prometheus metrics at /metrics: requests by route and status, latencies, events stored,\n"
        "database commits, /sync waiters, federation queues, the process's memory and CPU.\n"
        "packaging/grafana-dashboard.json is a Grafana dashboard that reads them."
    ),
    "metrics.enabled": "true: serve /metrics (off by default: it tells about traffic and peers).",
    "metrics.address": (
        '"" serves /metrics on the client listener (keep your reverse proxy from passing\n'
        '/metrics on); "127.0.0.1:9092" serves it on a plain-HTTP listener of its own. Never on\n'
        'the federation listener, so "" needs one (listen.federation) unless federation is off.'
    ),
    "ratelimit": (
        "Request rate limits (token buckets), so one client cannot starve the server: each\n"
        "allows `burst` requests at once (at least 1), refilled at `per_second`. A `per_second`\n"
        "of 0 turns that limit off (a `burst` of 0 would refuse every request, so it is refused)."
    ),
    "ratelimit.enabled": "false turns every limit off (test servers, benchmarks).",
    "ratelimit.login_per_second": "Login attempts, per IP address and per account.",
    "ratelimit.login_burst": "Login attempts allowed at once.",
    "ratelimit.register_per_second": "Registrations per IP address.",
    "ratelimit.register_burst": "Registrations allowed at once.",
    "ratelimit.send_per_second": "Room events a user may send.",
    "ratelimit.send_burst": "Room events allowed at once.",
    "ratelimit.upload_per_second": "Media uploads (and upload slots) a user may make.",
    "ratelimit.upload_burst": "Media uploads allowed at once.",
    "admin": (
        "The admin API (Synapse's /_synapse/admin paths, and dendrite-lite's own). The admin\n"
        "socket (listen.admin_socket) always serves it, to whoever can open the socket."
    ),
    "admin.client_api": (
        "true: server admins may also use it on the client listener with their access token\n"
        "(admin tools like synadm); false: only the admin socket serves it."
    ),
    "backup": (
        "Backups the server makes by itself while it runs (`dendrite-lite backup DIR` makes one\n"
        "by hand). Each is a directory with the database, media, signing key and this file;\n"
        "`dendrite-lite restore DIR` puts one back. Keep them on another disk or machine."
    ),
    "backup.directory": (
        'Where scheduled backups go (a new directory per backup). "" means no scheduled backups.'
    ),
    "backup.interval_hours": "How often a scheduled backup is made, in hours (0.5 = every 30 minutes).",
    "backup.keep": "How many scheduled backups to keep; older ones are deleted.",
    "media.remote_media_lifetime_days": (
        "Other servers' media (images in rooms you joined) nobody here opened for this many days\n"
        "is deleted from the cache, checked every 6 hours; it is fetched again if someone asks.\n"
        "0 keeps it forever. Your users' own uploads are never deleted by this."
    ),
    "appservices": (
        "Application services: bridges (mautrix-whatsapp, -telegram, -signal, Heisenbridge,\n"
        "matrix-appservice-irc) and bots with their own users. Each brings a registration\n"
        "YAML file (the one it generates for Synapse); list them here and restart.\n"
        "`dendrite-lite appservice list` shows what is registered."
    ),
    "appservices.registration_files": (
        'The registration files, e.g. ["/etc/mautrix-whatsapp/registration.yaml"].'
    ),
    "appservices.retry_initial_s": (
        "An appservice that does not take a transaction is retried after this many seconds,\n"
        "then twice as long each time; nothing queued for it is lost meanwhile."
    ),
    "appservices.retry_max_s": "The longest wait between two retries, in seconds.",
    "turn": (
        "A TURN server (coturn) relays voice and video calls between people behind NAT; without\n"
        "one, calls often connect only inside the same network. Clients ask this server for\n"
        "credentials. In coturn's turnserver.conf: use-auth-secret, static-auth-secret = <the\n"
        "same secret as shared_secret here>, realm = <your domain>."
    ),
    "turn.uris": (
        'The TURN server\'s URIs, e.g. ["turn:turn.example.org:3478?transport=udp",\n'
        '"turn:turn.example.org:3478?transport=tcp"]. [] means no TURN server.'
    ),
    "turn.shared_secret": (
        "coturn's static-auth-secret: each user gets credentials of their own that expire."
    ),
    "turn.username": 'Static credentials, for a TURN server without a shared secret ("" = none).',
    "turn.password": "The static credentials' password.",
    "turn.user_lifetime_s": "How long the credentials a user is given stay valid, in seconds.",
    "turn.allow_guests": "Whether guest users may use the TURN server too.",
    "calls": (
        "Group and 1:1 calls in Element X and Element Web (Element Call / MatrixRTC). Run a\n"
        "LiveKit SFU and lk-jwt-service beside this server and give lk-jwt-service's address here."
    ),
    "calls.livekit_service_url": (
        'lk-jwt-service\'s public URL, e.g. "https://livekit-jwt.example.org" ("" = no calls SFU;\n'
        "clients are told of it in /.well-known/matrix/client and /rtc/transports)."
    ),
    "calls.max_event_delay_s": (
        "The longest delay a delayed event (MSC4140) may ask for, in seconds; 0 turns them off.\n"
        "Calls use them so a crashed phone leaves the call by itself."
    ),
}

# What an unset (None) option resolves to, for the commented-out line (it depends on others).
_DERIVED: dict[str, Callable[[Config], Any]] = {
    "listen.client_tls": lambda config: config.client_tls,
    "listen.federation_tls": lambda config: config.federation_tls,
}

# Where a None path option points, for the commented-out line.
_DEFAULT_LOCATIONS: dict[str, str] = {
    "server.signing_key_path": "signing.key",
    "listen.admin_socket": "admin.sock",
    "database.path": "homeserver.db",
}


def render_config(config: Config, *, relative_to: Path | None = None) -> str:
    """Render `config` as commented TOML; paths under `relative_to` (the file's dir) as ./..."""
    out = [_HEADER]
    for section in SECTION_TYPES:
        out.append("")
        out.extend(_comment_lines(_COMMENTS[section]))
        out.append(f"[{section}]")
        values = getattr(config, section)
        for f in dataclasses.fields(values):
            key = f"{section}.{f.name}"
            value = getattr(values, f.name)
            out.extend(_comment_lines(_COMMENTS[key]))
            if value is None:
                default = config.server.data_dir / _DEFAULT_LOCATIONS.get(key, "")
                shown = _toml_path(default, relative_to) if key in _DEFAULT_LOCATIONS else '""'
                if key in _DERIVED:
                    shown = _toml_value(_DERIVED[key](config), relative_to)
                out.append(f"# {f.name} = {shown}")
            else:
                out.append(f"{f.name} = {_toml_value(value, relative_to)}")
            out.append("")
        out.pop()  # no blank line before the next section's comment block
    out.extend(_oidc_providers(config, relative_to))
    return "\n".join(out) + "\n"


# [[oidc_providers]] is an array of tables: an example while there is none.
_OIDC_COMMENT = """
Single sign-on with OpenID Connect providers (Authelia, Authentik, Keycloak, Google, ...):
one [[oidc_providers]] table each. Register this redirect URI at the provider:
<public_baseurl>_dendrite_lite/client/oidc/callback. Keys (README, "Single sign-on"):
idp_id, idp_name, issuer, client_id (required); client_secret or client_secret_file;
idp_icon (mxc://); scopes (["openid", "profile"]); discovery (true; false: set
authorization_endpoint, token_endpoint, jwks_uri, userinfo_endpoint); pkce (true);
localpart_claim ("preferred_username"); displayname_claim ("name"); email_claim ("");
auto_register (true); allow_existing_users (false); required_claims ({}); ca_file.
"""
_OIDC_EXAMPLE = """[[oidc_providers]]
idp_id = "authelia"
idp_name = "Authelia"
issuer = "https://auth.example.org"
client_id = "matrix"
client_secret_file = "/etc/dendrite-lite/oidc-secret"
scopes = ["openid", "profile", "email", "groups"]
email_claim = "email"
required_claims = { groups = "family" }"""


def _oidc_providers(config: Config, relative_to: Path | None) -> list[str]:
    out = ["", *_comment_lines(_OIDC_COMMENT.strip())]
    if not config.oidc_providers:
        return out + _comment_lines(_OIDC_EXAMPLE)
    for provider in config.oidc_providers:
        out.append("[[oidc_providers]]")
        for f in dataclasses.fields(provider):
            value = getattr(provider, f.name)
            if value is not None:
                out.append(f"{f.name} = {_toml_value(value, relative_to)}")
        out.append("")
    return out[:-1]


def _comment_lines(text: str) -> list[str]:
    return [f"# {line}" for line in text.splitlines()]


def _toml_value(value: Any, relative_to: Path | None) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        # Underscores make 52_428_800 readable; TOML accepts them in integers.
        return f"{value:_}"
    if isinstance(value, float):
        return repr(value)  # repr round-trips exactly and is valid TOML for finite floats
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, Path):
        return _toml_path(value, relative_to)
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml_value(v, relative_to) for v in value) + "]"
    if isinstance(value, dict):  # an inline table
        items = (f"{_toml_key(k)} = {_toml_value(v, relative_to)}" for k, v in value.items())
        return "{ " + ", ".join(items) + " }" if value else "{}"
    raise TypeError(f"cannot render {value!r} as TOML")


def _toml_path(path: Path, relative_to: Path | None) -> str:
    if relative_to is not None and path.is_absolute():
        try:
            return _toml_string("./" + path.relative_to(relative_to).as_posix())
        except ValueError:
            pass  # outside the config's directory: keep it absolute
    return _toml_string(str(path))


def _toml_key(key: str) -> str:
    bare = key and all(c.isascii() and (c.isalnum() or c in "_-") for c in key)
    return key if bare else _toml_string(key)


def _toml_string(s: str) -> str:
    # A TOML basic string: escape what TOML requires, keep other Unicode as it is.
    escaped = []
    for ch in s:
        if ch in ('"', "\\"):
            escaped.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            escaped.append(f"\\u{ord(ch):04X}")
        else:
            escaped.append(ch)
    return '"' + "".join(escaped) + '"'
