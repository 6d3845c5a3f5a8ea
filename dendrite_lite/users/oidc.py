"""Single sign-on with OpenID Connect providers ([[oidc_providers]]; OpenID Connect Core 1.0
authorization code flow, RFC 7636 PKCE), beside CAS (users/cas.py; users/sso.py has what they
share).

Login:
1. GET /login/sso/redirect/{idpId}?redirectUrl=R: `start` keeps a pending sign-in under a
   random `state` (with its nonce and PKCE verifier) and answers the provider's authorization
   URL: response_type=code, our callback as redirect_uri, state, nonce, code_challenge.
2. The provider signs the user in and sends the browser to
   `{public_baseurl}_dendrite_lite/client/oidc/callback?code=..&state=..` (CALLBACK_PATH; the
   redirect URI the admin registers at the provider).
3. `finish` takes the pending sign-in out (single use), exchanges the code at the token
   endpoint (with the verifier), verifies the ID token against the provider's JWKS (signature,
   iss, aud, exp, nonce: authlib/joserfc), adds the userinfo endpoint's claims (many providers
   put profile claims only there) and checks required_claims.
4. The (idp_id, sub) pair names the account (storage/sso_subjects.py). At the first sign-in
   the localpart claim (preferred_username) is mapped like a CAS user name
   (accounts.localpart_from_external) and the account registered (auto_register), or, when
   an account has that localpart already, linked to it only with allow_existing_users: a
   provider that lets its users pick their own name must not hand out our existing
   accounts. A later rename at the provider changes nothing here.
5. The caller hands the client a login token, as for CAS.

User-interactive authentication: the same round trip with the UIA session id kept in the
pending sign-in and prompt=login (the provider asks for the password again instead of
reusing its own session); the (idp_id, sub) pair must already name an account, which the UIA
session then records (users/uia.py's same-user rule).

Pending sign-ins live in memory, as UIA sessions and login tokens do: they are useful for ten
minutes, a restart only makes a user in the middle of signing in start again, and this server
is one process.
"""

from __future__ import annotations

import logging
import secrets
import ssl
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dendrite_lite.config import OidcProviderConfig
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.storage import Storage
from dendrite_lite.storage import sso_subjects
from dendrite_lite.storage import threepids as threepids_table
from dendrite_lite.users.accounts import (
    get_account,
    localpart_from_external,
    make_user_id,
    validate_user_id,
)
from dendrite_lite.users.sessions import now_ms
from dendrite_lite.users.sso import register_sso_user, sign_in_unavailable
from dendrite_lite.users.threepids import canonical_address

if TYPE_CHECKING:
    from authlib.integrations.httpx_client import AsyncOAuth2Client

__all__ = [
    "CALLBACK_PATH",
    "OidcProvider",
    "OidcService",
    "OidcSetupError",
    "PendingSignIn",
    "callback_url",
    "check_claims",
    "localpart_of",
    "provider_error",
]

log = logging.getLogger(__name__)

CALLBACK_PATH = "_dendrite_lite/client/oidc/callback"
PENDING_LIFETIME_S = 600.0  # time to type a password (and a second factor) at the provider
MAX_PENDING = 10_000  # each unfinished redirect costs one entry: bounded, oldest go first
TIMEOUT_S = 10.0
# Errors the provider sends when the user (or its policy) said no: the user's answer, not a
# failure of the provider.
_REFUSALS = frozenset({
    "access_denied", "login_required", "consent_required", "interaction_required",
    "account_selection_required", "unauthorized_client",
})


class OidcSetupError(Exception):
    """A provider's files cannot be read; the message names the key."""


@dataclass(frozen=True, slots=True)
class PendingSignIn:
    """A redirect to a provider whose callback has not come yet."""

    idp_id: str
    nonce: str
    code_verifier: str
    redirect_url: str | None  # a login's client URL
    session_id: str | None  # or a UIA session's id
    expires: float


def callback_url(public_baseurl: str) -> str:
    """The redirect URI the admin registers at every provider."""
    return public_baseurl.rstrip("/") + "/" + CALLBACK_PATH


def provider_error(provider: str, error: str, description: str) -> MatrixError:
    """The error a provider sent to the callback (RFC 6749 §4.1.2.1): the user's (or its
    policy's) refusal is 403, anything else the provider's failure (502)."""
    said = f"{error[:100]}{': ' + description[:200] if description else ''}"
    if error in _REFUSALS:
        return MatrixError(Errcode.FORBIDDEN, f"{provider} did not let you sign in ({said})")
    return MatrixError(
        Errcode.UNKNOWN, f"{provider} could not sign you in ({said}); try again", status=502
    )


def localpart_of(claims: dict[str, Any], claim: str) -> str:
    """The localpart the localpart claim maps to; 403 when the provider sent none."""
    value = claims.get(claim)
    if not isinstance(value, str) or not value.strip():
        raise MatrixError(
            Errcode.FORBIDDEN,
            f"The sign-in server did not say your user name (claim {claim!r}); ask the admin",
        )
    return localpart_from_external(value.strip())


def check_claims(claims: dict[str, Any], required: dict[str, str]) -> None:
    """403 unless every required claim has its value (or, for a list claim, contains it)."""
    for name, wanted in required.items():
        value = claims.get(name)
        present = wanted in value if isinstance(value, list) else value == wanted
        if not present:
            log.info("OIDC user %r lacks %s=%r", claims.get("sub"), name, wanted)
            raise MatrixError(
                Errcode.FORBIDDEN,
                "Your account on the sign-in server is not allowed to use this Matrix server",
            )


class OidcProvider:
    """One [[oidc_providers]] entry: its metadata (discovered once, then kept) and its client."""

    def __init__(self, config: OidcProviderConfig, redirect_uri: str) -> None:
        """Reads client_secret_file and ca_file now, so a wrong path stops the start-up
        (OidcSetupError) instead of the first sign-in."""
        self.config = config
        self._redirect_uri = redirect_uri
        self._tls = ssl.create_default_context()
        self._secret = config.client_secret
        where = f"oidc_providers (idp_id {config.idp_id!r})"
        try:
            if config.client_secret_file is not None:
                self._secret = config.client_secret_file.read_text().strip()
        except OSError as e:
            raise OidcSetupError(f"{where}.client_secret_file: {e}") from None
        try:
            if config.ca_file is not None:
                self._tls.load_verify_locations(cafile=str(config.ca_file))
        except (OSError, ssl.SSLError) as e:
            raise OidcSetupError(f"{where}.ca_file: {config.ca_file}: {e}") from None
        self._metadata: dict[str, Any] | None = None
        self._jwks: dict[str, Any] | None = None
        self._client: AsyncOAuth2Client | None = None

    @property
    def identity_provider(self) -> dict[str, str]:
        """The entry of the m.login.sso flow's identity_providers."""
        entry = {"id": self.config.idp_id, "name": self.config.idp_name}
        if self.config.idp_icon:
            entry["icon"] = self.config.idp_icon
        return entry

    async def authorization_url(self, state: str, pending: PendingSignIn) -> str:
        extra: dict[str, Any] = {"nonce": pending.nonce}
        if pending.session_id is not None:
            extra["prompt"] = "login"  # UIA: prove it now, not with the provider's old session
        url, _ = self._http().create_authorization_url(
            (await self.metadata())["authorization_endpoint"], state=state,
            code_verifier=pending.code_verifier if self.config.pkce else None, **extra,
        )
        return str(url)

    async def claims(self, code: str, pending: PendingSignIn) -> dict[str, Any]:
        """The signed-in user's verified claims: the ID token's, then the userinfo endpoint's
        (same sub) for those the ID token left out."""
        from authlib.common.errors import AuthlibBaseError
        from httpx import HTTPError

        metadata = await self.metadata()
        client = self._http()
        try:
            token = await client.fetch_token(
                metadata["token_endpoint"], grant_type="authorization_code", code=code,
                code_verifier=pending.code_verifier if self.config.pkce else None,
            )
        except AuthlibBaseError as e:
            log.warning("%s refused the code: %s", self.config.idp_id, e)
            raise sign_in_unavailable(f"it refused to finish the sign-in: {e.error}") from None
        except HTTPError as e:
            log.warning("%s token endpoint unreachable: %s", self.config.idp_id, e)
            raise sign_in_unavailable("its token endpoint could not be reached") from None
        except ValueError:  # not JSON
            raise sign_in_unavailable("its token endpoint answered something else than JSON") from None
        if not isinstance(token.get("id_token"), str):
            raise sign_in_unavailable("it sent no ID token")
        claims = await self._verified_id_token(token, pending.nonce)
        if metadata.get("userinfo_endpoint") and isinstance(token.get("access_token"), str):
            info = await self._get_json(
                metadata["userinfo_endpoint"], "userinfo",
                headers={"Authorization": f"Bearer {token['access_token']}"},
            )
            if info.get("sub") != claims["sub"]:  # OIDC Core §5.3.2: MUST be checked
                raise sign_in_unavailable("its userinfo is about another user")
            claims = {**info, **claims}
        return claims

    async def metadata(self) -> dict[str, Any]:
        """The provider's endpoints: its discovery document (whose issuer must be ours), or the
        configured ones. 502 while it cannot be fetched."""
        if self._metadata is None:
            c = self.config
            if c.discovery:
                url = c.issuer.rstrip("/") + "/.well-known/openid-configuration"
                found = await self._get_json(url, "discovery document")
                if found.get("issuer") != c.issuer:
                    log.warning("%s names issuer %r, not %r", url, found.get("issuer"), c.issuer)
                    raise sign_in_unavailable("its discovery document names another issuer")
                if not all(isinstance(found.get(k), str) for k in (
                    "authorization_endpoint", "token_endpoint", "jwks_uri"
                )):
                    raise sign_in_unavailable("its discovery document lacks endpoints")
            else:
                found = {"issuer": c.issuer}
            for key in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri"):
                if getattr(c, key):  # the configured endpoint wins over the discovered one
                    found[key] = getattr(c, key)
            self._metadata = found
        return self._metadata

    async def jwks(self) -> dict[str, Any]:
        """The provider's signing keys (JWKS), fetched once and again after a key rotation."""
        if self._jwks is None:
            self._jwks = await self._get_json((await self.metadata())["jwks_uri"], "JWKS")
        return self._jwks

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- internals ------------------------------------------------------------------------

    async def _verified_id_token(self, token: dict[str, Any], nonce: str) -> dict[str, Any]:
        from authlib.oidc.core import CodeIDToken
        from joserfc import jwt
        from joserfc.errors import InvalidKeyIdError, JoseError
        from joserfc.jwk import KeySet
        from joserfc.jws import JWSRegistry

        metadata = await self.metadata()
        algorithms = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        registry = JWSRegistry(algorithms=algorithms, strict_check_header=False)
        try:
            try:
                decoded = jwt.decode(token["id_token"], KeySet.import_key_set(await self.jwks()), registry=registry)
            except InvalidKeyIdError:  # the provider rotated its keys since we fetched them
                self._jwks = None
                decoded = jwt.decode(token["id_token"], KeySet.import_key_set(await self.jwks()), registry=registry)
            claims = CodeIDToken(
                decoded.claims, decoded.header, {"iss": {"values": [self.config.issuer]}},
                {"nonce": nonce, "client_id": self.config.client_id,
                 "access_token": token.get("access_token")},
            )
            claims.validate(leeway=60)
        except (JoseError, ValueError) as e:
            log.warning("%s sent an ID token we refuse: %s", self.config.idp_id, e)
            raise sign_in_unavailable(f"its ID token is not valid: {e}") from None
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise sign_in_unavailable("its ID token names no subject")
        return dict(claims)

    async def _get_json(self, url: str, what: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
        from httpx import HTTPError

        try:
            resp = await self._http().request(
                "GET", url, headers=headers, withhold_token=True,
            )
        except HTTPError as e:
            log.warning("%s %s unreachable: %s", self.config.idp_id, what, e)
            raise sign_in_unavailable(f"its {what} could not be fetched") from None
        if resp.status_code != 200:
            log.warning("%s %s answered %d", self.config.idp_id, what, resp.status_code)
            raise sign_in_unavailable(f"its {what} answered HTTP {resp.status_code}")
        try:
            body = resp.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise sign_in_unavailable(f"its {what} is not a JSON object")
        return body

    def _http(self) -> AsyncOAuth2Client:
        if self._client is None:
            import authlib.deprecate  # noqa: F401  (its own "always" filter, set first)

            with warnings.catch_warnings():
                # authlib would like httpx2 instead of httpx; httpx is this server's client.
                warnings.simplefilter("ignore", DeprecationWarning)
                from authlib.integrations.httpx_client import AsyncOAuth2Client

            from dendrite_lite.outbound_http import USER_AGENT

            c = self.config
            secret = self._secret
            self._client = AsyncOAuth2Client(
                client_id=c.client_id, client_secret=secret or None,
                token_endpoint_auth_method="client_secret_basic" if secret else "none",
                scope=" ".join(c.scopes), redirect_uri=self._redirect_uri,
                code_challenge_method="S256" if c.pkce else None,
                verify=self._tls, trust_env=False, follow_redirects=False, timeout=TIMEOUT_S,
                headers={"User-Agent": USER_AGENT},
            )
        return self._client


class OidcService:
    """The configured providers and the sign-ins under way; one per server."""

    def __init__(
        self,
        configs: tuple[OidcProviderConfig, ...],
        *,
        public_baseurl: str,
        server_name: str,
        may_register: Callable[[str], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.callback_url = callback_url(public_baseurl)
        self.providers = {c.idp_id: OidcProvider(c, self.callback_url) for c in configs}
        self._server_name = server_name
        self._may_register = may_register or (lambda user_id: True)
        self._clock = clock
        self._pending: dict[str, PendingSignIn] = {}

    async def start(
        self, idp_id: str, *, redirect_url: str | None = None, session_id: str | None = None
    ) -> str:
        """The provider's sign-in URL for a login (redirect_url) or a UIA stage (session_id)."""
        provider = self.providers[idp_id]
        self._expire()
        while len(self._pending) >= MAX_PENDING:
            del self._pending[next(iter(self._pending))]
        state = secrets.token_urlsafe(24)
        pending = PendingSignIn(
            idp_id, secrets.token_urlsafe(24), secrets.token_urlsafe(48), redirect_url,
            session_id, self._clock() + PENDING_LIFETIME_S,
        )
        url = await provider.authorization_url(state, pending)  # 502 before anything is kept
        self._pending[state] = pending
        return url

    def take(self, state: str) -> PendingSignIn:
        """The pending sign-in of a callback's state, used up; 400 for an unknown or old one."""
        self._expire()
        pending = self._pending.pop(state, None)
        if pending is None:
            raise MatrixError(
                Errcode.UNKNOWN,
                "This sign-in has expired or was already used; start again from your app",
                status=400,
            )
        return pending

    async def identify(self, storage: Storage, pending: PendingSignIn, code: str) -> str:
        """A UIA stage's user: the account the provider's user signed in as before."""
        provider = self.providers[pending.idp_id]
        claims = await provider.claims(code, pending)
        check_claims(claims, provider.config.required_claims)
        user_id = await storage.db.read(
            lambda conn: sso_subjects.select_sso_user(conn, pending.idp_id, claims["sub"])
        )
        if user_id is None:
            raise MatrixError(
                Errcode.FORBIDDEN,
                f"Your {provider.config.idp_name} account is not linked to an account here",
            )
        return user_id

    async def sign_in(self, storage: Storage, pending: PendingSignIn, code: str) -> str:
        """A login's user, registered or linked now at its first sign-in (module docstring)."""
        provider = self.providers[pending.idp_id]
        config = provider.config
        claims = await provider.claims(code, pending)
        check_claims(claims, config.required_claims)
        linked = await storage.db.read(
            lambda conn: sso_subjects.select_sso_user(conn, config.idp_id, claims["sub"])
        )
        if linked is not None:
            account = await get_account(storage, linked)
            if account is None or account.deactivated:
                raise MatrixError(Errcode.USER_DEACTIVATED, f"{linked} has been deactivated")
            return linked
        user_id = make_user_id(localpart_of(claims, config.localpart_claim), self._server_name)
        validate_user_id(user_id)  # too long, once escaped: M_INVALID_USERNAME
        displayname = claims.get(config.displayname_claim) if config.displayname_claim else None
        made = await register_sso_user(
            storage, user_id, auto_register=config.auto_register,
            may_register=self._may_register,
            displayname=displayname.strip() if isinstance(displayname, str) else None,
            via=config.idp_name,
        )
        if not made and not config.allow_existing_users:
            raise MatrixError(
                Errcode.USER_IN_USE,
                f"There is already an account {user_id} here, not made through "
                f"{config.idp_name}; the admin can let {config.idp_name} sign in to existing "
                "accounts with allow_existing_users = true",
                status=409,
            )
        now = now_ms()
        user_id = await storage.db.write(
            lambda conn: sso_subjects.insert_sso_subject(conn, config.idp_id, claims["sub"], user_id, now)
        )
        if made:
            await self._add_email(storage, user_id, claims, config)
        return user_id

    async def aclose(self) -> None:
        for provider in self.providers.values():
            await provider.aclose()

    # -- internals ------------------------------------------------------------------------

    async def _add_email(
        self, storage: Storage, user_id: str, claims: dict[str, Any], config: OidcProviderConfig
    ) -> None:
        address = claims.get(config.email_claim) if config.email_claim else None
        if not isinstance(address, str) or claims.get("email_verified") is not True:
            return
        now = now_ms()
        added = await storage.db.write(
            lambda conn: threepids_table.insert_user_threepid(
                conn, user_id, "email", canonical_address("email", address),
                validated_at=now, added_at=now,
            )
        )
        if not added:  # another account has it: the new account simply goes without
            log.info("%s's address from %s belongs to another account", user_id, config.idp_id)

    def _expire(self) -> None:
        now = self._clock()
        for state in [s for s, p in self._pending.items() if p.expires <= now]:
            del self._pending[state]

