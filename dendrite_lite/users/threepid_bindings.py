"""Third-party identifiers bound at identity servers through us (client-server §Adding Account
Administrative Contact Information: /account/3pid/bind, /unbind, /delete; §Account
deactivation).

- bind: the identity server publishes "address -> user" (it checked the client's validation
  session); we record where, as the spec asks ("Homeservers should track successful binds so
  they can be unbound later"; migrations/0038_threepid_bindings.sql).
- unbind: at the `id_server` the client names, else at every identity server we recorded the
  address at. `id_server_unbind_result` is "success" only when every one of them unbound it;
  "no-support" when one refused to (it does not unbind), or we know of none. A recorded binding
  goes once its identity server answered, either way: asking again would not change the answer.
- delete: unbind as above, then the homeserver's own copy of the address goes
  (storage/threepids.py, kept by the email threepid service), and its email pushers with it.
- deactivation: every recorded binding is unbound (at the request's `id_server`, if any; the
  deactivation itself removes the account's addresses). An identity server that fails here
  does not keep the account alive: its result is "no-support" and the deactivation goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiosqlite

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.request_body import optional_field, required_field
from dendrite_lite.storage import Storage
from dendrite_lite.storage import email_pushers as email_pushers_table
from dendrite_lite.storage import threepid_bindings as table
from dendrite_lite.storage import threepids as threepids_table
from dendrite_lite.storage.threepid_bindings import Binding
from dendrite_lite.users.identity_server import MEDIUMS, IdentityServers
from dendrite_lite.users.threepids import canonical_address

__all__ = ["ThreepidBindings", "parse_threepid"]

log = logging.getLogger(__name__)

def parse_threepid(body: Mapping[str, Any]) -> tuple[str, str, str | None]:
    """(medium, address, id_server) of an /unbind or /delete body."""
    medium: str = required_field(body, "medium", "string")
    address: str = required_field(body, "address", "string")
    id_server: str | None = optional_field(body, "id_server", "string")
    if medium not in MEDIUMS:
        raise MatrixError(Errcode.INVALID_PARAM, f"medium must be one of {', '.join(MEDIUMS)}")
    return medium, canonical_address(medium, address), id_server


class ThreepidBindings:
    def __init__(
        self, storage: Storage, identity: IdentityServers, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._storage = storage
        self._identity = identity
        self._clock = clock

    async def bind(self, user_id: str, body: Mapping[str, Any]) -> None:
        """POST /account/3pid/bind: the identity server's errors are the client's."""
        id_server: str = required_field(body, "id_server", "string")
        token: str = required_field(body, "id_access_token", "string")
        sid: str = required_field(body, "sid", "string")
        secret: str = required_field(body, "client_secret", "string")
        medium, address = await self._identity.bind(id_server, token, sid, secret, user_id)
        binding = Binding(user_id, medium, canonical_address(medium, address), id_server)
        now = int(self._clock() * 1000)
        await self._storage.db.write(lambda c: table.insert_binding(c, binding, now))

    async def unbind(
        self, user_id: str, medium: str, address: str, id_server: str | None = None
    ) -> str:
        """POST /account/3pid/unbind: "success" or "no-support". An identity server's own
        error (or one that cannot be reached) is raised, and its binding stays recorded."""
        if id_server is not None:
            servers = [id_server]
        else:
            servers = await self._storage.db.read(
                lambda c: table.select_binding_servers(c, user_id, medium, address)
            )
        if not servers:
            return "no-support"  # the spec: we do not know where it was bound
        unbound = True
        for server in servers:
            unbound &= await self._unbind_at(Binding(user_id, medium, address, server))
        return "success" if unbound else "no-support"

    async def delete(
        self, user_id: str, medium: str, address: str, id_server: str | None = None
    ) -> str:
        """POST /account/3pid/delete: unbind, then drop the account's own copy."""
        result = await self.unbind(user_id, medium, address, id_server)

        async def txn(c: aiosqlite.Connection) -> None:
            await threepids_table.delete_user_threepid(c, user_id, medium, address)
            # Email notifications go only to the account's own addresses (users/pushers.py).
            await email_pushers_table.delete_address_pushers(c, user_id, address)

        await self._storage.db.write(txn)
        return result

    async def unbind_all(self, user_id: str, id_server: str | None = None) -> str:
        """Deactivation: unbind every recorded binding (at `id_server` instead, when given,
        together with the account's own addresses, which the deactivation then removes).
        Failures are logged and counted as "no-support"; nothing here stops the deactivation."""
        bindings = await self._storage.db.read(lambda c: table.select_user_bindings(c, user_id))
        if id_server is not None:
            owned = await self._storage.db.read(
                lambda c: threepids_table.select_user_threepids(c, user_id)
            )
            addresses = dict.fromkeys(
                [(b.medium, b.address) for b in bindings] + [(t.medium, t.address) for t in owned]
            )
            bindings = [Binding(user_id, m, a, id_server) for m, a in addresses]
        unbound = True
        for binding in bindings:
            try:
                unbound &= await self._unbind_at(binding)
            except MatrixError as e:
                log.warning(
                    "deactivating %s: %s %s not unbound at %s: %s", user_id, binding.medium,
                    binding.address, binding.id_server, e.error,
                )
                unbound = False
        return "success" if unbound else "no-support"

    async def _unbind_at(self, binding: Binding) -> bool:
        done = await self._identity.unbind(
            binding.id_server, binding.user_id, binding.medium, binding.address
        )
        await self._storage.db.write(lambda c: table.delete_binding(c, binding))
        return done
