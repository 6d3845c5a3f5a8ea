"""The wiring point: build the apps over the services (service_wiring.py), serve, shut down cleanly.

Two listeners, one process:
- client (`listen.client`): every route (client API, federation, keys, well-known, health);
- federation (`listen.federation`, skipped when empty or equal to the client address): only the
  federation, key, well-known and health routes, so a port opened to the internet for
  federation does not also expose the client API;
- the admin unix socket (`listen.admin_socket`, api/admin_socket.py): every admin blueprint,
  to whoever can open the socket (mode 0600); bound before the database opens, so a second
  server on the same data directory is refused while the first answers there;
- with metrics.address, a plain-HTTP listener serving only /metrics (api/metrics.py); without
  it, and metrics.enabled, /metrics is on the client listener, never on the federation one;
- with tls.mode = "acme", a third, plain HTTP (`listen.acme_http`, port 80): the CA's HTTP-01
  challenges, /.well-known/matrix/*, and redirects to https (api/acme_http.py). The renewer
  (tls/manager.py) runs beside them and loads each new certificate into the shared context.
  Without a certificate yet, the TLS listeners serve a temporary self-signed one: they must be up
  for the CA's tls-alpn-01 validation, and the log says why TLS is not up.
Each listener is its own Quart app (api/app.py) over the same Services, served by Hypercorn
(api/listener.py) on the one event loop (event_loop.py), HTTP/1.1 and HTTP/2. Each speaks TLS or
plain HTTP on its own (listen.client_tls / listen.federation_tls, e.g. the client API plain behind
a local reverse proxy and federation with the certificate); every TLS listener serves the one
shared SSLContext. Both stop on the same trigger: long-polling /sync answers at once, in-flight
requests finish, and only then is storage closed.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import signal
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from hypercorn.asyncio import serve as hypercorn_serve
from quart import Blueprint, Quart

from dendrite_lite.api import health
from dendrite_lite.api.acme_http import build_acme_http_app
from dendrite_lite.api.access_log import AccessLog
from dendrite_lite.api.admin_socket import (
    AdminSocket,
    AdminSocketError,
    QuietPollsAccessLog,
    bind_admin_socket,
    mark_admin_socket_app,
)
from dendrite_lite.api.app import Services, create_app
from dendrite_lite.api.framing import FramingGuard
from dendrite_lite.api.listener import ListenerConfig, server_tls_context
from dendrite_lite.api.admin import synapse_register
from dendrite_lite.api.admin.routes import ADMIN_BLUEPRINTS
from dendrite_lite.api.client import account, devices, login, register, versions
from dendrite_lite.api.client import capabilities, directory, profile, room_events, rooms
from dendrite_lite.api.client import account_data as account_data_api
from dendrite_lite.api.client import misc, presence, pushrules, read_markers, receipts, tags, typing
from dendrite_lite.api.client import whois as whois_api
from dendrite_lite.api.client import dehydrated_devices as dehydrated_devices_api
from dendrite_lite.api.client import keys as keys_api
from dendrite_lite.api.client import pushers as pushers_api
from dendrite_lite.api.client import hierarchy as hierarchy_api
from dendrite_lite.api.client import login_token as login_token_api
from dendrite_lite.api.client import user_directory as user_directory_api
from dendrite_lite.api.client import openid as openid_api
from dendrite_lite.api.media import download as media_download
from dendrite_lite.api.media import upload as media_upload
from dendrite_lite.api.client import preview_url as preview_url_api
from dendrite_lite.api.client import reports as reports_api
from dendrite_lite.api.client import room_keys as room_keys_api
from dendrite_lite.api.client import to_device as to_device_api
from dendrite_lite.api.client import filters as filters_api
from dendrite_lite.api.client import appservice as appservice_api
from dendrite_lite.api.client import auth_fallback
from dendrite_lite.api.client import threepids as threepids_api
from dendrite_lite.api.client import sso as sso_api
from dendrite_lite.api.client import messages as messages_api
from dendrite_lite.api.client import relations as relations_api
from dendrite_lite.api.client import thread_subscriptions as thread_subscriptions_api
from dendrite_lite.api.client import matrixrtc as matrixrtc_api
from dendrite_lite.api.client import delayed_events as delayed_events_api
from dendrite_lite.api.client import search as search_api
from dendrite_lite.api.client import legacy_sync as legacy_sync_api
from dendrite_lite.api.client import sliding_sync as sliding_sync_api
from dendrite_lite.api.client import sync as sync_api
from dendrite_lite.api.client import threepid_binding as threepid_binding_api
from dendrite_lite.api.federation import events as federation_events
from dendrite_lite.api.federation import key_query as federation_key_query
from dendrite_lite.api.federation import query as federation_query
from dendrite_lite.api.federation import transactions as federation_transactions
from dendrite_lite.api.federation import user_keys as federation_user_keys
from dendrite_lite.api.federation import membership as federation_membership
from dendrite_lite.api.federation import openid as federation_openid
from dendrite_lite.api.federation import public_rooms as federation_public_rooms
from dendrite_lite.api.federation import room_complexity as federation_room_complexity
from dendrite_lite.api.federation import third_party_invites as federation_third_party_invites
from dendrite_lite.api.federation import hierarchy as federation_hierarchy
from dendrite_lite.api.federation import media as federation_media
from dendrite_lite.api.federation import keys as federation_keys
from dendrite_lite.api.federation import version as federation_version
from dendrite_lite.api.wellknown import matrix as wellknown_matrix
from dendrite_lite.config import Config
from dendrite_lite.event_loop import new_event_loop
from dendrite_lite.logging_setup import configure_logging
from dendrite_lite.memory import return_large_blocks_to_os
from dendrite_lite.service_wiring import StartupError, close_services, load_services
from dendrite_lite.sync.notifier import Notifier
from dendrite_lite.systemd_notify import SystemdNotifier
from dendrite_lite.tls.http01 import Http01Answers
from dendrite_lite.tls.state import CERTIFICATE_FILE, KEY_FILE, load_state

if TYPE_CHECKING:
    from dendrite_lite.tls.manager import CertificateManager

__all__ = [
    "Listener",
    "Listening",
    "StartupError",
    "build_admin_app",
    "build_app",
    "load_services",
    "serve",
    "run",
]

log = logging.getLogger(__name__)

Listener = Literal["client", "federation"]

# Served on the federation listener (and on the client listener too).
_FEDERATION_BLUEPRINTS: tuple[Blueprint, ...] = (
    federation_keys.bp,
    federation_key_query.bp,
    federation_transactions.bp,
    federation_user_keys.bp,
    federation_events.bp,
    federation_query.bp,
    federation_membership.bp,
    federation_openid.bp,
    federation_public_rooms.bp,
    federation_hierarchy.bp,
    federation_room_complexity.bp,
    federation_third_party_invites.bp,
    federation_media.bp,
    federation_version.bp,
    wellknown_matrix.bp,
    health.bp,
)
_CLIENT_ONLY_BLUEPRINTS: tuple[Blueprint, ...] = (
    versions.bp,
    login.bp,
    sso_api.bp,
    register.bp,
    auth_fallback.bp,
    threepids_api.bp,
    appservice_api.bp,
    account.bp,
    threepid_binding_api.bp,
    devices.bp,
    synapse_register.bp,
    *ADMIN_BLUEPRINTS,
    rooms.bp,
    room_events.bp,
    directory.bp,
    profile.bp,
    capabilities.bp,
    account_data_api.bp,
    tags.bp,
    receipts.bp,
    read_markers.bp,
    typing.bp,
    keys_api.bp,
    to_device_api.bp,
    room_keys_api.bp,
    dehydrated_devices_api.bp,
    presence.bp,
    pushrules.bp,
    pushers_api.bp,
    reports_api.bp,
    hierarchy_api.bp,
    openid_api.bp,
    login_token_api.bp,
    user_directory_api.bp,
    preview_url_api.bp,
    misc.bp,
    whois_api.bp,
    legacy_sync_api.bp,
    sync_api.bp,
    sliding_sync_api.bp,
    filters_api.bp,
    messages_api.bp,
    relations_api.bp,
    thread_subscriptions_api.bp,
    matrixrtc_api.bp,
    delayed_events_api.bp,
    search_api.bp,
    media_upload.bp,
    media_download.bp,
)


@dataclass(frozen=True, slots=True)
class Listening:
    """Where the server listens, handed to `serve(ready=...)` once the sockets accept."""

    client: tuple[str, int]
    federation: tuple[str, int] | None
    # "http" or "https" per listener serving (listen.client_tls / listen.federation_tls).
    schemes: dict[Listener, str]
    apps: dict[Listener, Quart]
    # The live TLS context of every TLS listener (None when none speaks TLS): a certificate
    # loaded into it serves every new connection, with no restart (ACME renewal).
    tls: ssl.SSLContext | None = None
    # The plain-HTTP ACME challenge listener (listen.acme_http), when tls.mode = "acme".
    acme_http: tuple[str, int] | None = None
    # The metrics' own plain-HTTP listener (metrics.address), when there is one.
    metrics: tuple[str, int] | None = None
    # The admin unix socket (listen.admin_socket) and its app.
    admin_socket: Path | None = None
    admin_app: Quart | None = None

    @property
    def client_url(self) -> str:
        return _url(self.schemes["client"], self.client)

    @property
    def federation_url(self) -> str | None:
        return _url(self.schemes["federation"], self.federation) if self.federation else None


def _url(scheme: str, addr: tuple[str, int]) -> str:
    host = f"[{addr[0]}]" if ":" in addr[0] else addr[0]
    return f"{scheme}://{host}:{addr[1]}"


def build_app(config: Config, svc: Services, *, listener: Listener = "client") -> Quart:
    blueprints = _FEDERATION_BLUEPRINTS
    first: tuple[Callable[[], Awaitable[None]], ...] = ()
    if svc.metrics is not None:
        # Imported only with metrics on: prometheus-client is memory a Pi without them keeps.
        from dendrite_lite.api import metrics

        first = (metrics.note_route,)
        if listener == "client" and not config.metrics.address:
            blueprints += (metrics.bp,)
    if listener == "client":
        blueprints = _CLIENT_ONLY_BLUEPRINTS + blueprints
    return create_app(svc, blueprints, name=f"dendrite_lite.{listener}", first=first)


def _bind_metrics(config: Config) -> socket.socket | None:
    if not config.metrics.enabled or not config.metrics.address:
        return None
    try:
        return _bind_socket(config.metrics.address)
    except StartupError as e:
        raise StartupError(f"metrics.address: {e}") from None


def _start_metrics(
    svc: Services, sock: socket.socket, stop: asyncio.Event
) -> tuple[tuple[str, int], asyncio.Task[None]]:
    """The metrics' own listener (its address, and its task, with the others)."""
    from dendrite_lite.api.metrics import build_metrics_app  # see build_app

    addr = _sockname(sock)
    app = build_metrics_app(svc)
    task = asyncio.create_task(
        _serve_until(app, sock, None, stop, svc.notifier, on_response=_on_response(svc))
    )
    return addr, task


def _on_response(svc: Services) -> Callable[[Any, int, float], None] | None:
    return svc.metrics.observe_request if svc.metrics is not None else None


def build_admin_app(svc: Services) -> Quart:
    """The admin socket's app: every admin blueprint, to whoever can open the socket."""
    app = create_app(svc, ADMIN_BLUEPRINTS, name="dendrite_lite.admin")
    mark_admin_socket_app(app)
    return app


def _bind_admin(config: Config) -> AdminSocket:
    try:
        return bind_admin_socket(config.admin_socket_path)
    except AdminSocketError as e:
        raise StartupError(str(e)) from None


def _parse_bind(bind: str) -> tuple[str, int]:
    host, _, port = bind.rpartition(":")
    if not host or not port.isdigit():
        raise StartupError(f"listen address {bind!r} is not host:port")
    return host.strip("[]"), int(port)


def _bind_socket(bind: str) -> socket.socket:
    host, port = _parse_bind(bind)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise StartupError(f"cannot listen on {bind}: {e.strerror}") from None
    # Listening now, before the services and apps are built, means a client connecting right
    # after `ready` waits in the backlog instead of being refused.
    sock.listen(128)
    return sock


def _load_tls(cert: Path, key: Path) -> ssl.SSLContext:
    # Loaded here so a bad path or a key that does not match the certificate is a clear startup
    # error, not an exception inside a listener after the server said it was ready.
    try:
        return server_tls_context(cert, key)
    except (OSError, ssl.SSLError) as e:
        raise StartupError(f"cannot load tls.cert_path {cert} / tls.key_path {key}: {e}") from None


def _tls_context(config: Config) -> ssl.SSLContext | None:
    """The TLS listeners' context (one, shared: renewing the certificate updates them all);
    None when no listener speaks TLS."""
    tls = config.tls
    wanted = [name for name, _ in _listener_binds(config) if _speaks_tls(config, name)]
    if not wanted:
        return None
    if tls.mode == "proxy":
        # parse_config refuses this; a Config built in code (tests, scripts) gets it here.
        raise StartupError(
            f'listen.{wanted[0]}_tls: true needs a certificate, but tls.mode = "proxy" has none'
        )
    if tls.mode == "files":
        if tls.cert_path is None or tls.key_path is None:
            raise StartupError("tls.mode = \"files\" needs tls.cert_path and tls.key_path")
        return _load_tls(tls.cert_path, tls.key_path)
    if tls.mode == "acme":
        return _acme_tls_context(config)
    return None


def _acme_tls_context(config: Config) -> ssl.SSLContext:
    """The certificate ACME got before, else a temporary self-signed one for the names (the
    listeners must be up to answer tls-alpn-01), saying loudly why TLS is not up."""
    cert, key = config.acme_dir / CERTIFICATE_FILE, config.acme_dir / KEY_FILE
    why = f"no certificate from {config.tls.acme_directory} yet"
    if cert.exists() and key.exists():
        try:
            return server_tls_context(cert, key)
        except (OSError, ssl.SSLError) as e:
            why = f"cannot load {cert} / {key} ({e}); getting a new certificate"
    state = load_state(config.acme_dir)
    if state.last_error:
        why += f"; the last attempt failed: {state.last_error}"
    log.error("TLS is not up: %s (serving a temporary self-signed certificate for %s)",
              why, ", ".join(config.acme_names))
    from dendrite_lite.tls.alpn import pem_files  # see _start_acme on these late imports
    from dendrite_lite.tls.certs import self_signed

    with pem_files(*self_signed(config.acme_names)) as (cert_path, key_path):
        return server_tls_context(cert_path, key_path)


def _bind_acme_http(config: Config) -> socket.socket | None:
    if config.tls.mode != "acme" or not config.listen.acme_http:
        return None
    try:
        return _bind_socket(config.listen.acme_http)
    except StartupError as e:
        raise StartupError(
            f"listen.acme_http: {e} (binding port 80 needs root or CAP_NET_BIND_SERVICE; set "
            'listen.acme_http = "" to get certificates by tls-alpn-01 on port 443 instead)'
        ) from None


def raise_open_files_limit() -> None:
    """Raise the soft limit on open files to the hard one: every connection is a file, and
    systemd's default soft limit (1,024) would let a thousand idle connections lock everyone
    else out."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # "Unlimited" is no valid soft limit for files on Linux; 2**20 is its usual ceiling (nr_open).
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft == resource.RLIM_INFINITY or soft >= target:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (OSError, ValueError) as e:
        log.warning("cannot raise the open files limit from %d to %d (%s): the server refuses "
                    "connections past about %d at once", soft, target, e, soft)
        return
    log.info("open files limit raised from %d to %d", soft, target)


def _speaks_tls(config: Config, listener: Listener) -> bool:
    # Federation on the client listener (a shared address) is served with the client's TLS.
    return config.client_tls if listener == "client" else config.federation_tls


def _listener_binds(config: Config) -> list[tuple[Listener, str]]:
    binds: list[tuple[Listener, str]] = [("client", config.listen.client)]
    fed = config.listen.federation
    # Equal addresses mean one shared listener, except port 0 (a fresh free port each time).
    if fed and (fed != config.listen.client or fed.endswith(":0")):
        binds.append(("federation", fed))
    return binds


def _install_signal_handlers(event: asyncio.Event) -> Callable[[], None]:
    loop = asyncio.get_running_loop()
    installed: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, event.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # not the main thread, or no signals here
            pass

    def remove() -> None:
        for sig in installed:
            loop.remove_signal_handler(sig)

    return remove


async def serve(
    config: Config,
    *,
    shutdown_trigger: Callable[[], Awaitable[object]] | None = None,
    ready: Callable[[Listening], object] | None = None,
    configure_app: Callable[[Quart, Listener], object] | None = None,
) -> None:
    """Serve until `shutdown_trigger` returns (default: SIGTERM or SIGINT).

    `ready` is called once every socket is listening, with the bound addresses (port 0 in the
    config binds a free port). `configure_app` may add routes to each app before it serves
    (tests use it for test-only endpoints).
    """
    return_large_blocks_to_os()  # password hashing's 9 MiB buffers must not stay in RSS
    raise_open_files_limit()
    # Before the database opens: a live server answering on the socket refuses this one.
    admin = _bind_admin(config)
    try:
        svc = await load_services(config)
    except BaseException:
        admin.sock.close()
        admin.remove()
        raise
    sockets: list[tuple[Listener, socket.socket]] = []
    remove_signals: Callable[[], None] | None = None
    trigger_task: asyncio.Task[None] | None = None
    renewer: CertificateManager | None = None
    acme_sock: socket.socket | None = None
    metrics_sock: socket.socket | None = None
    admin_pending: AdminSocket | None = admin
    stop = asyncio.Event()
    try:
        tls = _tls_context(config)
        for listener, bind in _listener_binds(config):
            sockets.append((listener, _bind_socket(bind)))
        acme_sock = _bind_acme_http(config)
        metrics_sock = _bind_metrics(config)
        addrs = {name: _sockname(sock) for name, sock in sockets}
        apps = {name: build_app(config, svc, listener=name) for name, _ in sockets}
        if configure_app is not None:
            for name, app in apps.items():
                configure_app(app, name)

        if shutdown_trigger is None:
            remove_signals = _install_signal_handlers(stop)
        else:
            trigger_task = asyncio.create_task(_set_when_done(shutdown_trigger, stop))
        # Each listener with or without the one shared context (listen.<name>_tls).
        contexts = {name: tls if _speaks_tls(config, name) else None for name, _ in sockets}
        tasks = [
            asyncio.create_task(_serve_until(
                apps[name], sock, contexts[name], stop, svc.notifier, on_response=_on_response(svc)
            ))
            for name, sock in sockets
        ]
        metrics_addr = None
        if metrics_sock is not None:
            metrics_addr, metrics_task = _start_metrics(svc, metrics_sock, stop)
            metrics_sock = None  # its listener closes it
            tasks.append(metrics_task)
        admin_app = build_admin_app(svc)
        tasks.append(asyncio.create_task(_serve_admin(admin_app, admin, stop, svc.notifier)))
        admin_pending = None  # its listener closes and removes it
        sockets.clear()  # each listener closes its socket when it stops
        acme_addr = None
        if config.tls.mode == "acme":
            renewer, acme_addr, acme_task = _start_acme(config, svc, tls, acme_sock, stop)
            acme_sock = None  # its listener closes it
            if acme_task is not None:
                tasks.append(acme_task)
        schemes: dict[Listener, str] = {
            name: "https" if ctx is not None else "http" for name, ctx in contexts.items()
        }
        listening = Listening(
            addrs["client"], addrs.get("federation"), schemes, apps, tls, acme_addr,
            admin_socket=admin.path, admin_app=admin_app,
            metrics=metrics_addr,
        )
        for name in addrs:
            log.info("%s listener on %s", name, getattr(listening, f"{name}_url"))
        log.info("admin socket on %s", admin.path)
        if acme_addr is not None:
            log.info("ACME challenge listener on %s", _url("http", acme_addr))
        if metrics_addr is not None:
            log.info("metrics listener on %s", _url("http", metrics_addr))
        if ready is not None:
            ready(listening)
        await _wait_all(tasks, stop)
    finally:
        if trigger_task is not None:
            trigger_task.cancel()
        if renewer is not None:
            await renewer.stop()
        for _, sock in sockets:
            sock.close()
        if acme_sock is not None:
            acme_sock.close()
        if metrics_sock is not None:
            metrics_sock.close()
        if admin_pending is not None:
            admin_pending.sock.close()
            admin_pending.remove()
        if remove_signals is not None:
            remove_signals()
        await close_services(svc)
        # Only after every listener stopped: in-flight requests may still write.
        await svc.storage.close()
        log.info("stopped")


def _start_acme(
    config: Config, svc: Services, tls: ssl.SSLContext | None, sock: socket.socket | None,
    stop: asyncio.Event,
) -> tuple[CertificateManager, tuple[str, int] | None, asyncio.Task[None] | None]:
    """The renewer, and the port-80 listener when there is one (its task, with the others)."""
    # Imported only with tls.mode = "acme": the acme library brings requests, josepy, pyOpenSSL
    # and cryptography, 19 MiB of RSS a server behind a proxy or with its own files never uses.
    from dendrite_lite.tls.alpn import TlsAlpnAnswers
    from dendrite_lite.tls.manager import CertificateManager

    http01, alpn = Http01Answers(), TlsAlpnAnswers()
    if tls is not None:
        alpn.install(tls)
    task = addr = None
    if sock is not None:
        addr = _sockname(sock)
        app = build_acme_http_app(config, http01, svc)
        task = asyncio.create_task(_serve_until(app, sock, None, stop, svc.notifier))
    renewer = CertificateManager(config, live=tls, http01=http01, alpn=alpn)
    renewer.start()
    return renewer, addr, task


async def _serve_admin(
    app: Quart, admin: AdminSocket, stop: asyncio.Event, notifier: Notifier
) -> None:
    try:
        await _serve_until(app, admin.sock, None, stop, notifier, access_log=QuietPollsAccessLog)
    finally:
        admin.remove()


async def _serve_until(
    app: Quart, sock: socket.socket, tls: ssl.SSLContext | None, stop: asyncio.Event,
    notifier: Notifier, *, access_log: type[AccessLog] = AccessLog,
    on_response: Callable[[Any, int, float], None] | None = None,
) -> None:
    async def stopping() -> None:
        await stop.wait()
        notifier.close()  # long-polling /sync answers now, not at its timeout

    # AccessLog writes our own line per request; FramingGuard refuses ambiguous bodies before
    # the app sees them.
    asgi = access_log(FramingGuard(app), on_response=on_response)
    try:
        await hypercorn_serve(asgi, ListenerConfig(sock, tls), shutdown_trigger=stopping, mode="asgi")  # type: ignore[arg-type]
    except OSError as e:
        raise StartupError(f"cannot serve on {_sockname_text(sock)}: {e}") from None
    finally:
        sock.close()


def _sockname_text(sock: socket.socket) -> str:
    if sock.family == socket.AF_UNIX:
        return str(sock.getsockname())
    try:
        host, port = _sockname(sock)
    except OSError:
        return "its socket"
    return f"{host}:{port}"


def _sockname(sock: socket.socket) -> tuple[str, int]:
    name = sock.getsockname()
    return str(name[0]), int(name[1])


async def _set_when_done(trigger: Callable[[], Awaitable[object]], event: asyncio.Event) -> None:
    try:
        await trigger()
    finally:
        event.set()


async def _wait_all(tasks: Sequence[asyncio.Task[None]], stop: asyncio.Event) -> None:
    # If one listener dies (e.g. a TLS file error), stop the others instead of half-serving.
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        if any(not t.cancelled() and t.exception() for t in done):
            stop.set()
    finally:
        stop.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError):
            raise r


def run(config: Config) -> None:
    """Serve in the foreground until SIGTERM/SIGINT (`dendrite-lite run`)."""
    configure_logging(config.logging.level)
    systemd = SystemdNotifier.from_environment()
    systemd.status("starting: opening the database")
    watchdog: list[asyncio.Task[None] | None] = []

    def ready(listening: Listening) -> None:
        where = f"client {listening.client_url}"
        if listening.federation_url is not None:
            where += f", federation {listening.federation_url}"
        systemd.ready(f"serving {config.server.server_name}: {where}")
        watchdog.append(systemd.start_watchdog())

    try:
        with asyncio.Runner(loop_factory=lambda: new_event_loop(config.server.event_loop)) as runner:
            runner.run(serve(config, ready=ready))
    except StartupError as e:
        log.error("%s", e)
        systemd.status(f"failed to start: {e}")
        raise SystemExit(1) from None
    finally:
        systemd.stopping()
        systemd.close()
