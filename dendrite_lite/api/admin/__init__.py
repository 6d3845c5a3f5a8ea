"""Admin APIs (Synapse-compatible where tools expect Synapse's paths)."""

from __future__ import annotations

from dendrite_lite.api.app import Services
from dendrite_lite.api.client.auth import authenticate
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.users.sessions import Requester

__all__ = ["require_admin"]


async def require_admin(svc: Services) -> Requester:
    """The requester, who must be a server admin (403 M_FORBIDDEN otherwise)."""
    requester = await authenticate(svc)
    if not requester.is_admin:
        raise MatrixError(Errcode.FORBIDDEN, "You are not a server admin")
    return requester
