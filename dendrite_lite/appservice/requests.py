"""What the homeserver asks application services on a client's behalf.

- User and alias queries (application-service-api §Querying): an unknown local user or alias in
  an AS's namespace is asked of that AS, which may create it before answering 200.
- Pings: `POST /_matrix/client/v1/appservice/{id}/ping` makes us ping the AS and time it.
- Third-party lookups (§Third party networks): /thirdparty/* on the client API, answered by the
  ASes that registered the protocol.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from dendrite_lite.appservice.http import APP_PREFIX, AppserviceError, AppserviceHttp
from dendrite_lite.appservice.registration import Registration
from dendrite_lite.appservice.registry import AppServices
from dendrite_lite.errors import Errcode, MatrixError

__all__ = ["AppserviceRequests"]

PROTOCOL_CACHE_S = 3600.0


class AppserviceRequests:
    def __init__(self, appservices: AppServices, http: AppserviceHttp) -> None:
        self.appservices = appservices
        self.http = http
        self._protocols: dict[tuple[str, str], tuple[float, Any]] = {}
        # Told the id of an AS that just answered a ping: its queue stops backing off (a
        # bridge pings us when it starts, so what waited for it goes out at once).
        self.on_alive: Callable[[str], None] | None = None

    async def query_user(self, user_id: str) -> bool:
        """Whether the AS owning `user_id`'s namespace says it exists (it created it)."""
        reg = self.appservices.owner_of("users", user_id)
        if reg is None or reg.url is None:
            return False
        return await self.http.query_user(reg, user_id)

    async def query_alias(self, alias: str) -> bool:
        reg = self.appservices.owner_of("aliases", alias)
        if reg is None or reg.url is None:
            return False
        return await self.http.query_alias(reg, alias)

    async def ping(self, requester_as: str | None, as_id: str, transaction_id: Any) -> int:
        """POST /appservice/{appserviceId}/ping: the AS's round trip in ms. Only the AS itself
        may ask (403 otherwise); 502 M_AS_... errors name what went wrong with the AS."""
        reg = self.appservices.by_id(as_id)
        if reg is None or requester_as != as_id:
            raise MatrixError(Errcode.FORBIDDEN, "Only the appservice itself may ping it")
        if transaction_id is not None and not isinstance(transaction_id, str):
            raise MatrixError(Errcode.BAD_JSON, "transaction_id must be a string")
        if reg.url is None:
            raise MatrixError("M_URL_NOT_SET", "The appservice has no url", status=400)
        started = time.monotonic()
        try:
            await self.http.ping(reg, transaction_id)
        except AppserviceError as e:
            if e.status is None:
                raise MatrixError("M_CONNECTION_FAILED", e.message, status=502) from None
            body = json.dumps(e.body)[:1000] if e.body is not None else ""
            raise MatrixError(
                "M_BAD_STATUS", e.message, status=502, status_code=e.status, body=body
            ) from None
        if self.on_alive is not None:
            self.on_alive(as_id)
        return int((time.monotonic() - started) * 1000)

    # --- third-party networks ------------------------------------------------------------------
    async def protocols(self) -> dict[str, Any]:
        """GET /thirdparty/protocols: each protocol's metadata from the first AS that answers,
        with every answering AS listed as an instance."""
        out: dict[str, Any] = {}
        for reg in self.appservices:
            for protocol in reg.protocols:
                info = await self._protocol_of(reg, protocol)
                if not isinstance(info, Mapping):
                    continue
                merged = out.setdefault(protocol, {**info, "instances": []})
                for instance in info.get("instances") or []:
                    if not isinstance(instance, Mapping):
                        continue
                    instance = dict(instance)
                    if isinstance(instance.get("network_id"), str):
                        # What public room queries name an AS room list by (rooms/directory.py).
                        instance["instance_id"] = f"{reg.id}|{instance['network_id']}"
                    merged["instances"].append(instance)
        return out

    async def _protocol_of(self, reg: Registration, protocol: str) -> Any:
        """The AS's metadata of `protocol`, kept PROTOCOL_CACHE_S once it answered (as Synapse
        does: clients ask at every start, and the answer changes with the bridge's version)."""
        now = time.monotonic()
        cached = self._protocols.get((reg.id, protocol))
        if cached is not None and now - cached[0] < PROTOCOL_CACHE_S:
            return cached[1]
        info = await self._ask(reg, f"{APP_PREFIX}/thirdparty/protocol/{quote(protocol)}")
        if isinstance(info, Mapping):
            self._protocols[(reg.id, protocol)] = (now, info)
        return info

    async def protocol(self, protocol: str) -> dict[str, Any]:
        found = (await self.protocols()).get(protocol)
        if found is None:
            raise MatrixError(Errcode.NOT_FOUND, f"Unknown protocol {protocol}")
        return found  # type: ignore[no-any-return]

    async def lookup(self, kind: str, protocol: str | None, params: Mapping[str, str]) -> list[Any]:
        """GET /thirdparty/{user|location}[/{protocol}]: the answers of every AS with the
        protocol (or, without one, of every AS), concatenated."""
        results: list[Any] = []
        for reg in self.appservices:
            if protocol is not None and protocol not in reg.protocols:
                continue
            path = f"{APP_PREFIX}/thirdparty/{kind}"
            if protocol is not None:
                path += f"/{quote(protocol)}"
            answer = await self._ask(reg, path, params)
            if isinstance(answer, list):
                results += answer
        return results

    async def _ask(self, reg: Registration, path: str, params: Mapping[str, str] | None = None) -> Any:
        if reg.url is None:
            return None
        try:
            return await self.http.request(reg, "GET", path, params=params)
        except AppserviceError:
            return None
