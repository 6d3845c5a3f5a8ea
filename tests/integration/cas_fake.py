"""A small CAS server on loopback for the single sign-on tests (CAS protocol 3.0, the parts a
CAS client uses): GET /cas/login signs a user in and sends the browser to the service URL with
a service ticket; GET /cas/proxyValidate answers the ticket's XML, once per ticket, for the
service it was issued to.

A real CAS server shows a login form on /cas/login; here the test names the user who "typed
their password" with ?user=, and gets the redirect straight away. One server for the whole
test session (`cas_server`); `reset()` between tests.
"""

from __future__ import annotations

import html
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

__all__ = ["FakeCas", "cas_server"]


@dataclass
class FakeCas:
    url: str = ""  # the CAS base URL, .../cas
    # CAS user name -> attribute -> values released at validation.
    attributes: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    # The next validations answer this (status, body) instead, once each.
    canned: list[tuple[int, str]] = field(default_factory=list)
    validations: list[dict[str, str]] = field(default_factory=list)
    _tickets: dict[str, tuple[str, str]] = field(default_factory=dict)  # ticket -> (service, user)
    _counter: itertools.count = field(default_factory=itertools.count)

    def reset(self) -> None:
        self.attributes.clear()
        self.canned.clear()
        self.validations.clear()
        self._tickets.clear()

    def issue_ticket(self, service: str, user: str) -> str:
        ticket = f"ST-{next(self._counter)}-fake"
        self._tickets[ticket] = (service, user)
        return ticket

    async def _login(self, request: web.Request) -> web.StreamResponse:
        service = request.query.get("service")
        if not service:
            return web.Response(status=400, text="no service")
        user = request.query.get("user")
        if user is None:  # what a browser would get: the login form
            return web.Response(text="<form>username, password</form>", content_type="text/html")
        sep = "&" if "?" in service else "?"
        raise web.HTTPFound(f"{service}{sep}ticket={self.issue_ticket(service, user)}")

    async def _validate(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        self.validations.append(query)
        if self.canned:
            status, body = self.canned.pop(0)
            return web.Response(status=status, text=body, content_type="application/xml")
        found = self._tickets.pop(query.get("ticket", ""), None)  # a ticket works once
        if found is None:
            return _xml(_failure("INVALID_TICKET", f"Ticket {query.get('ticket')} not recognized"))
        service, user = found
        if query.get("service") != service:
            return _xml(_failure("INVALID_SERVICE", "Ticket was issued for another service"))
        return _xml(success(user, self.attributes.get(user, {})))


def success(user: str, attributes: dict[str, list[str]]) -> str:
    released = "".join(
        f"<cas:{name}>{html.escape(value)}</cas:{name}>"
        for name, values in attributes.items() for value in values
    )
    return (
        "<cas:serviceResponse xmlns:cas='http://www.yale.edu/tp/cas'>"
        f"<cas:authenticationSuccess><cas:user>{html.escape(user)}</cas:user>"
        f"<cas:attributes>{released}</cas:attributes></cas:authenticationSuccess>"
        "</cas:serviceResponse>"
    )


def _failure(code: str, text: str) -> str:
    return (
        "<cas:serviceResponse xmlns:cas='http://www.yale.edu/tp/cas'>"
        f"<cas:authenticationFailure code='{code}'>{html.escape(text)}</cas:authenticationFailure>"
        "</cas:serviceResponse>"
    )


def _xml(body: str) -> web.Response:
    return web.Response(text=body, content_type="application/xml")


@pytest.fixture(scope="session")
async def cas_server() -> AsyncIterator[FakeCas]:
    fake = FakeCas()
    app = web.Application()
    app.router.add_get("/cas/login", fake._login)
    app.router.add_get("/cas/proxyValidate", fake._validate)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.url = f"http://127.0.0.1:{port}/cas"
    try:
        yield fake
    finally:
        await runner.cleanup()
