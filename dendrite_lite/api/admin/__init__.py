"""Admin APIs (Synapse-compatible where tools expect Synapse's paths).

Served on two listeners (server.py): the admin unix socket, where opening the socket is the
authentication, and the client listener, to server admins with their access token unless
`admin.client_api = false`.
"""

from __future__ import annotations

from quart import current_app

from dendrite_lite.api.admin_socket import ADMIN_SOCKET_FLAG
from dendrite_lite.api.app import Services
from dendrite_lite.api.client.auth import authenticate
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.users.sessions import Requester

__all__ = ["SOCKET_ADMIN", "require_admin"]

# Who asks on the admin socket: no user, no device, no token; an admin by file permissions.
SOCKET_ADMIN = Requester(user_id="", device_id="", is_admin=True, is_guest=False, token_hash="")


async def require_admin(svc: Services) -> Requester:
    """The requester, who must be a server admin (403 M_FORBIDDEN otherwise). On the admin
    socket that is everyone (SOCKET_ADMIN); on the client listener with admin.client_api off,
    the admin API is not there (404 M_UNRECOGNIZED)."""
    if current_app.config.get(ADMIN_SOCKET_FLAG):
        return SOCKET_ADMIN
    if not svc.config.admin.client_api:
        raise MatrixError(Errcode.UNRECOGNIZED, "Unrecognized request")
    requester = await authenticate(svc)
    if not requester.is_admin:
        raise MatrixError(Errcode.FORBIDDEN, "You are not a server admin")
    return requester
