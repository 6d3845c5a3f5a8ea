"""Single sign-on with a CAS server ([cas]; client-server-api §SSO client login/authentication,
CAS protocol 2.0/3.0 service ticket validation).

Login (m.login.sso, and the deprecated m.login.cas, which differs only in its redirect path):
1. GET /login/sso/redirect?redirectUrl=R answers 302 to `{server_url}/login?service=S`, where
   S = `{public_baseurl}_matrix/client/r0/login/cas/ticket?redirectUrl=R` (r0: the path
   Synapse gives its CAS server, so a CAS service registration made for Synapse still fits).
2. The CAS server signs the user in and sends the browser to `S&ticket=T`.
3. `sign_in` validates T at `{server_url}/proxyValidate?ticket=T&service=S` (S rebuilt from
   the callback's own redirectUrl, so a ticket issued for another service is refused by the
   CAS server), checks cas.required_attributes, maps the CAS user name to a localpart
   (accounts.localpart_from_external: 'cas_user!' -> 'cas_user=21') and registers that user on
   first sign-in (cas.auto_register; users/sso.py). An account that already has that localpart is that
   user's: a CAS server the admin configured vouches for its names, as Synapse's CAS support
   does for accounts made before it was turned on.
4. The caller issues a short-lived login token and sends the browser back to R with
   ?loginToken= (sso.login_redirect), after a page asking the user to confirm unless R starts
   with one of cas.trusted_client_urls (the spec's guard against a link that would hand a
   login to another site).

User-interactive authentication (the m.login.sso stage): the same round trip with
S = `...cas/ticket?session=<UIA session id>`; `identify` says which user the CAS sign-in maps
to, and the UIA session records it (users/uia.py) — a sensitive operation goes through only
when that is the user who asked.

The CAS answer is XML: parsed with the standard library after refusing any DOCTYPE (so no
entity declarations, hence no entity expansion), with its size bounded.
"""

from __future__ import annotations

import logging
import ssl
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dendrite_lite.config import CasConfig
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.storage import Storage
from dendrite_lite.users.accounts import (
    localpart_from_external,
    make_user_id,
    validate_user_id,
)
from dendrite_lite.users.sso import register_sso_user, sign_in_unavailable

if TYPE_CHECKING:
    import httpx

__all__ = ["CAS_IDP_ID", "CasService", "CasUser", "parse_validation"]

log = logging.getLogger(__name__)

CAS_IDP_ID = "cas"
TICKET_PATH = "_matrix/client/r0/login/cas/ticket"
# A CAS server answers within a second; the user's browser is waiting on this.
TIMEOUT_S = 10.0
# A validation answer is the user name and a few attributes (group lists can be long).
MAX_ANSWER_BYTES = 256 * 1024
_CAS_NS = "{http://www.yale.edu/tp/cas}"


@dataclass(frozen=True, slots=True)
class CasUser:
    """What a CAS server said about a validated ticket."""

    name: str
    attributes: dict[str, list[str]] = field(default_factory=dict)


def parse_validation(body: bytes | bytearray) -> CasUser:
    """The user of a /proxyValidate (or /serviceValidate) answer. 403 M_FORBIDDEN when the CAS
    server refused the ticket, 502 when the answer is not a CAS answer."""
    try:
        text = bytes(body).decode("utf-8")
    except UnicodeDecodeError:
        raise sign_in_unavailable("its answer is not UTF-8") from None
    # Refused before parsing: a DOCTYPE is the only way to declare entities. Checked on the
    # decoded text, so no other encoding can hide it.
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise sign_in_unavailable("its answer declares a DOCTYPE")
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        raise sign_in_unavailable("its answer is not XML") from None
    if _local(root.tag) != "serviceResponse":
        raise sign_in_unavailable("its answer is not a CAS serviceResponse")
    success = _child(root, "authenticationSuccess")
    if success is None:
        failure = _child(root, "authenticationFailure")
        if failure is None:
            raise sign_in_unavailable("its answer says neither success nor failure")
        code = failure.get("code", "")
        why = " ".join((failure.text or "").split())[:200]
        log.info("CAS refused a ticket: %s %s", code, why)
        raise MatrixError(
            Errcode.FORBIDDEN,
            f"The sign-in server did not accept this sign-in ({code or 'no code'}"
            f"{': ' + why if why else ''}); start again from your app",
        )
    user = _child(success, "user")
    name = (user.text or "").strip() if user is not None else ""
    if not name:
        raise sign_in_unavailable("its answer names no user")
    return CasUser(name, _attributes(success))


def _local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _child(element: ET.Element, name: str) -> ET.Element | None:
    return next((c for c in element if _local(c.tag) == name), None)


def _attributes(success: ET.Element) -> dict[str, list[str]]:
    """CAS 3.0's <cas:attributes><cas:name>value</cas:name>... (a name may repeat), and the
    <cas:attribute name=".." value=".."/> form some servers send."""
    found: dict[str, list[str]] = {}
    container = _child(success, "attributes")
    for element in container if container is not None else ():
        name = _local(element.tag)
        if name == "attribute" and element.get("name") is not None:
            found.setdefault(element.get("name", ""), []).append(element.get("value", ""))
        elif name:
            found.setdefault(name, []).append((element.text or "").strip())
    return found


class CasService:
    """One per server while cas.server_url is set; its HTTP client is pooled."""

    def __init__(
        self,
        config: CasConfig,
        *,
        public_baseurl: str,
        server_name: str,
        may_register: Callable[[str], bool] | None = None,
    ) -> None:
        self._config = config
        self._ticket_url = public_baseurl.rstrip("/") + "/" + TICKET_PATH
        self._server_name = server_name
        # False for a user id an application service holds exclusively.
        self._may_register = may_register or (lambda user_id: True)
        self._client: httpx.AsyncClient | None = None

    @property
    def identity_provider(self) -> dict[str, str]:
        """The entry of the m.login.sso flow's identity_providers."""
        return {"id": CAS_IDP_ID, "name": self._config.display_name}

    @property
    def name(self) -> str:
        return self._config.display_name

    def service_url(self, *, redirect_url: str | None = None, session_id: str | None = None) -> str:
        """The `service` of a login (redirect_url) or UIA (session_id) round trip: where the CAS
        server sends the browser with its ticket, and what the ticket is validated for."""
        query = {"redirectUrl": redirect_url} if redirect_url is not None else {"session": session_id}
        return self._ticket_url + "?" + urllib.parse.urlencode(query, quote_via=urllib.parse.quote)

    def login_url(self, service: str) -> str:
        """The CAS server's sign-in page for `service`."""
        return self._config.server_url + "/login?" + urllib.parse.urlencode(
            {"service": service}, quote_via=urllib.parse.quote
        )

    def is_trusted_client(self, redirect_url: str) -> bool:
        return any(redirect_url.startswith(p) for p in self._config.trusted_client_urls)

    async def sign_in(self, storage: Storage, ticket: str, redirect_url: str) -> str:
        """The user a login ticket signs in, registered now if new (see the module docstring)."""
        user_id, cas_user = await self._identify(
            ticket, self.service_url(redirect_url=redirect_url)
        )
        values = cas_user.attributes.get(self._config.displayname_attribute) or [""]
        await register_sso_user(
            storage, user_id, auto_register=self._config.auto_register,
            may_register=self._may_register, displayname=values[0].strip(), via="CAS",
        )
        return user_id

    async def identify(self, ticket: str, service: str) -> str:
        """The user id a ticket's CAS user maps to, once the CAS server confirmed it for
        `service` and the user has cas.required_attributes."""
        return (await self._identify(ticket, service))[0]

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- internals ------------------------------------------------------------------------

    async def _identify(self, ticket: str, service: str) -> tuple[str, CasUser]:
        cas_user = await self._validate(ticket, service)
        self._check_attributes(cas_user)
        user_id = make_user_id(localpart_from_external(cas_user.name), self._server_name)
        validate_user_id(user_id)  # too long, once escaped: M_INVALID_USERNAME
        return user_id, cas_user

    def _check_attributes(self, user: CasUser) -> None:
        for name, wanted in self._config.required_attributes.items():
            if wanted not in user.attributes.get(name, ()):
                log.info("CAS user %r lacks %s=%r", user.name, name, wanted)
                raise MatrixError(
                    Errcode.FORBIDDEN,
                    "Your account on the sign-in server is not allowed to use this Matrix server",
                )

    async def _validate(self, ticket: str, service: str) -> CasUser:
        from dendrite_lite.outbound_http import HttpError, fetch

        url = self._config.server_url + "/proxyValidate?" + urllib.parse.urlencode(
            {"ticket": ticket, "service": service}, quote_via=urllib.parse.quote
        )
        try:
            answer = await fetch(
                self._http(), "GET", url, max_body_bytes=MAX_ANSWER_BYTES,
                timeout_s=TIMEOUT_S, connect_timeout_s=TIMEOUT_S,
            )
        except HttpError as e:
            log.warning("CAS server %s unreachable: %s", self._config.server_url, e)
            raise sign_in_unavailable("it could not be reached") from None
        if answer.status != 200:
            log.warning("CAS /proxyValidate answered %d", answer.status)
            raise sign_in_unavailable(f"it answered HTTP {answer.status}")
        return parse_validation(answer.body)

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            # Imported on first use, like every outbound client's httpx (not loaded at start-up).
            import httpx

            from dendrite_lite.outbound_http import new_client

            # The system's CAs (and SSL_CERT_FILE's): a CAS server is usually on an intranet
            # with a certificate from the organisation's CA.
            transport = httpx.AsyncHTTPTransport(verify=ssl.create_default_context())
            self._client = new_client(transport)
        return self._client
