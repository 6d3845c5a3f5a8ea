"""The renewer: gets the ACME certificate, keeps it fresh, and swaps it into the running listeners.

One task on the server's event loop (`CertificateManager.start`), in the one process holding
flock() on <acme_dir>/renewer.lock (a second server on the same data directory does not renew).
It sleeps until the next thing is due and wakes every RENEW_REQUEST_POLL_S to stat
<acme_dir>/renew-request (`dendrite-lite tls renew`), which means "now, back-off or not".

- What is due comes from tls/renewal.py (a third of the lifetime left, ARI's window, changed
  names, the back-off after failures) and state.json, which is written after every attempt so a
  restart neither forgets a back-off nor renews early.
- The order itself (tls/issuer.py) is synchronous and runs in a worker thread.
- The swap: `load_cert_chain` on the live context every TLS listener serves. New handshakes get
  the new certificate; connections made before keep theirs; nothing restarts.
- Failures are logged as one line with the reason and the next attempt; while there is no
  certificate at all each one also says "TLS is not up" (the listeners serve a temporary
  self-signed certificate meanwhile, see server.py).

`renew_standalone` renews without a running server (`dendrite-lite tls renew` when no process
holds the lock): it answers the challenge on listeners of its own for the attempt's duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import logging
import os
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from dendrite_lite.config import Config
from dendrite_lite.tls import ari
from dendrite_lite.tls.alpn import TlsAlpnAnswers, context_from_pem
from dendrite_lite.tls.certs import self_signed, summarize
from dendrite_lite.tls.http01 import Http01Answers
from dendrite_lite.tls.issuer import (
    Issued,
    IssueError,
    challenge_type,
    issue,
    new_client,
)
from dendrite_lite.tls.renewal import (
    after_failure,
    after_success,
    next_attempt_at,
    pick_in_window,
)
from dendrite_lite.tls.state import (
    CERTIFICATE_FILE,
    KEY_FILE,
    RENEW_REQUEST_FILE,
    RENEWER_LOCK_FILE,
    AcmeState,
    load_state,
    save_state,
    write_private,
)

__all__ = [
    "RENEW_REQUEST_POLL_S",
    "CertificateManager",
    "RenewerBusy",
    "renew_standalone",
    "tls_bind",
]

log = logging.getLogger(__name__)

# How often the renewer looks for a `tls renew` request (one stat() of a file).
RENEW_REQUEST_POLL_S = 2.0


class RenewerBusy(Exception):
    """Another process holds renewer.lock (a running server renews)."""


def _when(ts: float | None) -> str:
    if ts is None:
        return "unknown"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


class CertificateManager:
    def __init__(
        self,
        config: Config,
        *,
        live: ssl.SSLContext | None,
        http01: Http01Answers | None,
        alpn: TlsAlpnAnswers | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.live = live  # the listeners' context: the new certificate is loaded into it
        self.http01 = http01
        self.alpn = alpn
        self.clock = clock
        self.acme_dir = config.acme_dir
        self.state = load_state(self.acme_dir)
        self._lock_fd: int | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def certificate_path(self) -> Path:
        return self.acme_dir / CERTIFICATE_FILE

    @property
    def key_path(self) -> Path:
        return self.acme_dir / KEY_FILE

    def has_certificate(self) -> bool:
        return self.certificate_path.exists() and self.key_path.exists()

    # --- the renewer lock -----------------------------------------------------------------

    def acquire(self) -> None:
        """Hold renewer.lock for as long as this manager renews; RenewerBusy when taken."""
        self.acme_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.acme_dir / RENEWER_LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RenewerBusy(
                f"another process renews the certificate ({self.acme_dir / RENEWER_LOCK_FILE} "
                "is locked)"
            ) from None
        self._lock_fd = fd

    def release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing drops the flock
            self._lock_fd = None

    # --- running in the server ------------------------------------------------------------

    def start(self) -> None:
        """Renew in the background (the server calls this once its listeners are up)."""
        try:
            self.acquire()
        except RenewerBusy as e:
            log.warning("ACME: not renewing here: %s", e)
            return
        self._task = asyncio.create_task(self._run(), name="acme-renewer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.release()

    def _next_due(self) -> float:
        due = next_attempt_at(
            self.state, self.config.acme_names, has_certificate=self.has_certificate()
        )
        if self.has_certificate() and self.state.ari_next_check is not None and not self.state.failures:
            due = min(due, self.state.ari_next_check)
        return due

    async def _run(self) -> None:
        request = self.acme_dir / RENEW_REQUEST_FILE
        while True:
            requested = request.exists()
            now = self.clock()
            if requested or self._next_due() <= now:
                request.unlink(missing_ok=True)
                await self._due_work(now, forced=requested)
                continue
            await asyncio.sleep(min(RENEW_REQUEST_POLL_S, max(self._next_due() - now, 0.0)))

    async def _due_work(self, now: float, *, forced: bool) -> None:
        """Renew when renewal (or a request) is due; otherwise it was the ARI check."""
        renewal = next_attempt_at(self.state, self.config.acme_names,
                                  has_certificate=self.has_certificate())
        if forced or renewal <= now:
            await self.renew()
        else:
            await self.check_renewal_info()

    async def renew(self) -> AcmeState:
        """One attempt now: a certificate on success (swapped in), the back-off on failure.
        Never raises for the CA's or the network's failures: they are in the returned state."""
        names = ", ".join(self.config.acme_names)
        started = self.clock()
        try:
            issued = await asyncio.to_thread(issue, self.config, self.http01, self.alpn)
        except IssueError as e:
            return self._failed(names, e.reason, e.retry_after)
        except Exception as e:  # a bug must not stop renewal for good: back off like a failure
            log.exception("ACME: unexpected error getting a certificate for %s", names)
            return self._failed(names, f"unexpected error: {e!r}", None)
        try:
            self._install(issued)
        except (OSError, ssl.SSLError) as e:
            return self._failed(names, f"cannot store or load the new certificate: {e}", None)
        log.info(
            "ACME: certificate for %s issued by %s by %s in %.1f s, valid until %s; renewal due %s",
            names, self.state.issuer, issued.challenge, self.clock() - started,
            _when(self.state.not_after), _when(self.state.next_renewal),
        )
        await self.check_renewal_info()
        return self.state

    def _failed(self, names: str, reason: str, retry_after: float | None) -> AcmeState:
        now = self.clock()
        self.state = after_failure(self.state, reason, now, retry_after)
        save_state(self.acme_dir, self.state)
        log.error("ACME: could not get a certificate for %s: %s; next attempt at %s",
                  names, reason, _when(self.state.next_attempt))
        if not self.has_certificate():
            log.error("TLS is not up: %s (serving a temporary self-signed certificate)", reason)
        return self.state

    def _install(self, issued: Issued) -> None:
        summary = summarize(issued.fullchain_pem)
        # Key first: a crash between the two leaves a new key with the old chain, which fails
        # to load at start (a clear error, and the renewer then gets a fresh pair), never a
        # certificate served with the wrong key.
        write_private(self.key_path, issued.key_pem)
        write_private(self.certificate_path, issued.fullchain_pem)
        if self.live is not None:
            self.live.load_cert_chain(self.certificate_path, self.key_path)
        self.state = after_success(
            self.state,
            names=self.config.acme_names,
            issuer=summary.issuer,
            not_before=summary.not_before,
            not_after=summary.not_after,
            challenge=issued.challenge,
            directory=self.config.tls.acme_directory,
            now=self.clock(),
        )
        save_state(self.acme_dir, self.state)

    async def check_renewal_info(self) -> None:
        """Ask the CA's ARI when to renew (nothing to do when its directory has none)."""
        if not self.has_certificate():
            return
        leaf = summarize(self.certificate_path.read_bytes()).leaf
        try:
            info = await asyncio.to_thread(
                lambda: ari.fetch_renewal_info(new_client(self.config), leaf)
            )
        except Exception as e:  # noqa: BLE001 - ARI is advice: the lifetime rule still holds
            log.warning("ACME: cannot fetch renewal info (ARI): %s", " ".join(str(e).split()))
            info = None
            next_check: float | None = self.clock() + ari.ARI_DEFAULT_RECHECK_S
        else:
            next_check = info.next_check if info is not None else None
        state = dataclasses.replace(self.state, ari_next_check=next_check)
        if info is not None and info.window != self.state.ari_window:
            renewal = pick_in_window(*info.window, now=self.clock())
            state = dataclasses.replace(state, ari_window=info.window, next_renewal=renewal)
            log.info("ACME: the CA suggests renewing between %s and %s; renewal due %s",
                     _when(info.window[0]), _when(info.window[1]), _when(renewal))
        self.state = state
        save_state(self.acme_dir, self.state)


def tls_bind(config: Config) -> str | None:
    """The TLS listener address the CA reaches for tls-alpn-01: one on port 443 when there is
    one, else the federation listener's, else the client listener's."""
    binds = []
    if config.listen.federation and config.federation_tls:
        binds.append(config.listen.federation)
    if config.client_tls:
        binds.append(config.listen.client)
    for bind in binds:
        if bind.endswith(":443"):
            return bind
    return binds[0] if binds else None


def _bound_socket(bind: str, what: str) -> socket.socket:
    host, _, port = bind.rpartition(":")
    host = host.strip("[]")
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, int(port)))
    except OSError as e:
        sock.close()
        raise RenewerBusy(f"cannot listen on {bind} ({what}) for the challenge: {e.strerror}; "
                          "is the server running?") from None
    sock.listen(16)
    return sock


@contextlib.asynccontextmanager
async def _challenge_listener(
    config: Config, http01: Http01Answers, alpn: TlsAlpnAnswers
) -> AsyncIterator[None]:
    """Answer the challenge while no server runs: the port-80 app for http-01, a bare TLS
    listener (the challenge contexts only) for tls-alpn-01."""
    if challenge_type(config) == "http-01":
        # The one place tls/ reaches into api/: the port-80 listener is that app.
        from hypercorn.asyncio import serve as hypercorn_serve

        from dendrite_lite.api.acme_http import build_acme_http_app
        from dendrite_lite.api.listener import ListenerConfig

        sock = _bound_socket(config.listen.acme_http, "listen.acme_http")
        stop = asyncio.Event()
        task = asyncio.create_task(hypercorn_serve(  # type: ignore[arg-type]
            build_acme_http_app(config, http01), ListenerConfig(sock, None),
            shutdown_trigger=stop.wait, mode="asgi",
        ))
        try:
            yield
        finally:
            stop.set()
            await task
            sock.close()
        return
    bind = tls_bind(config)
    if bind is None:
        raise RenewerBusy("tls-alpn-01 needs a TLS listener (listen.client_tls or "
                          "listen.federation_tls) on the address the CA connects to (port 443)")
    sock = _bound_socket(bind, "the TLS listener")
    context = context_from_pem(*self_signed(config.acme_names))
    alpn.install(context)
    server = await asyncio.get_running_loop().create_server(asyncio.Protocol, sock=sock, ssl=context)
    try:
        yield
    finally:
        server.close()
        await server.wait_closed()


async def renew_standalone(config: Config) -> AcmeState:
    """Renew now, without a running server (`dendrite-lite tls renew`), ignoring the back-off.
    Raises RenewerBusy when a running server holds the lock (ask it through renew-request
    instead) or the challenge's address cannot be bound; the CA's failures are in the state."""
    http01, alpn = Http01Answers(), TlsAlpnAnswers()
    manager = CertificateManager(config, live=None, http01=http01, alpn=alpn)
    manager.acquire()
    try:
        async with _challenge_listener(config, http01, alpn):
            return await manager.renew()
    finally:
        manager.release()
