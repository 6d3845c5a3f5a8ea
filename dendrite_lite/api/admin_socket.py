"""The admin unix socket (listen.admin_socket): where `dendrite-lite tui` and admin commands
reach the admin API.

Whoever can open the socket is an admin (api/admin.require_admin answers for the socket without
a token), so the file permissions are the authentication:
- the socket is created 0600 (owner only, through the umask: no moment where it is wider) in a
  data directory created 0700;
- a socket file left by a server that died is replaced, but one a live server answers on is
  not: a second server on the same data directory would share the database too, so it refuses
  to start instead;
- a clean stop removes the file, unless another process has put its own socket there since.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from pathlib import Path

from quart import Quart

from dendrite_lite.api.access_log import AccessLog

__all__ = [
    "ADMIN_SOCKET_FLAG",
    "AdminSocket",
    "AdminSocketError",
    "QuietPollsAccessLog",
    "bind_admin_socket",
    "mark_admin_socket_app",
]

# Set in the admin socket app's config: require_admin reads it to know where a request came in.
ADMIN_SOCKET_FLAG = "DENDRITE_LITE_ADMIN_SOCKET"
# sockaddr_un.sun_path is 108 bytes on Linux, the terminating NUL included.
_MAX_PATH_BYTES = 107
# What the TUI asks every 2 seconds: logged, they would fill the log it tails.
_QUIET_PATHS = ("/_dendrite_lite/admin/v1/status", "/_dendrite_lite/admin/v1/logs")


class AdminSocketError(Exception):
    """Why the admin socket cannot be served (server.py makes it a startup error)."""


class AdminSocket:
    """A bound, listening admin socket and the file it lives at."""

    def __init__(self, sock: socket.socket, path: Path) -> None:
        self.sock = sock
        self.path = path
        self._inode = os.stat(path).st_ino

    def remove(self) -> None:
        """Remove the socket file, if it is still ours."""
        with contextlib.suppress(FileNotFoundError):
            if os.stat(self.path).st_ino == self._inode:
                self.path.unlink()


def bind_admin_socket(path: Path) -> AdminSocket:
    """Listen on `path` (mode 0600), replacing a stale socket file; AdminSocketError when another
    server answers there, or the path cannot be a socket."""
    if len(os.fsencode(path)) > _MAX_PATH_BYTES:
        raise AdminSocketError(
            f"listen.admin_socket: {path} is longer than the {_MAX_PATH_BYTES} bytes a unix "
            "socket path may have; set listen.admin_socket to a shorter path"
        )
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    _clear_stale(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        sock.bind(os.fspath(path))
    except OSError as e:
        sock.close()
        raise AdminSocketError(f"listen.admin_socket: cannot listen on {path}: {e.strerror}") from None
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)  # whatever the umask did, the mode is the authentication
    sock.listen(16)
    return AdminSocket(sock, path)


def _clear_stale(path: Path) -> None:
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise AdminSocketError(
            f"listen.admin_socket: {path} exists and is not a socket; move it away or set "
            "listen.admin_socket to another path"
        )
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(os.fspath(path))
    except (ConnectionRefusedError, FileNotFoundError):
        path.unlink(missing_ok=True)  # its server is gone
        return
    except OSError:
        pass  # answering slowly or not ours to test: treat it as alive
    finally:
        probe.close()
    raise AdminSocketError(
        f"another server is running: it answers on the admin socket {path} (stop it first; "
        "two servers must not share one data directory)"
    )


def mark_admin_socket_app(app: Quart) -> None:
    """Mark `app` as the admin socket's: require_admin lets its requests in without a token."""
    app.config[ADMIN_SOCKET_FLAG] = True


class QuietPollsAccessLog(AccessLog):
    """The access log of the admin socket, without the status and log polls of the TUI."""

    async def __call__(self, scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] == "http" and scope["path"] in _QUIET_PATHS and scope["method"] == "GET":
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)
