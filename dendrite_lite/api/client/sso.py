"""Client-server API: single sign-on (client-server-api §SSO client login/authentication,
sso_login_redirect.yaml) through CAS (users/cas.py) and OpenID Connect providers
(users/oidc.py); users/sso.py has what they share.

- GET /login/sso/redirect: 302 to the one identity provider, or a page to pick one of several;
  /login/sso/redirect/{idpId} to that provider ("cas" or an OIDC idp_id), the deprecated
  /login/cas/redirect to CAS.
- GET /login/cas/ticket (r0 and v3), where the CAS server sends the browser back, and
  GET /_dendrite_lite/client/oidc/callback, where an OIDC provider does: for a login a login
  token for the client after a "continue to your app" page, for user-interactive
  authentication the m.login.sso stage. They answer the browser with HTML pages, errors
  included (4xx for the user's or the link's fault, 502 for the sign-in server's).
- The m.login.sso UIA fallback page (`uia_fallback_page`, routed by auth_fallback.py), with
  one link per provider; an OIDC link goes through /_dendrite_lite/client/oidc/reauth, which
  starts the round trip only when clicked.

Without single sign-on every route here answers 404 M_UNRECOGNIZED, like any unknown endpoint.

NOTSPEC: the spec asks for a login token that lives about five seconds; ours live two minutes
(users/login_tokens.py), as Synapse's, since the user may first read the page that asks them
whether to continue to their app. No cookie ties the callback to the browser that started the
round trip (the spec's optional guard against unsolicited callbacks): the OIDC state is
single-use and server-side, and the confirmation pages stand in for it.
"""

from __future__ import annotations

import html
import logging
import urllib.parse
from typing import TYPE_CHECKING

from quart import Blueprint, Response, request

from dendrite_lite.api.app import services
from dendrite_lite.api.client.html_pages import auth_done_page, html_page, message
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.users.cas import CAS_IDP_ID, CasService
from dendrite_lite.users.oidc import CALLBACK_PATH, OidcService, provider_error
from dendrite_lite.users.sso import check_redirect_url, login_redirect

if TYPE_CHECKING:
    from dendrite_lite.api.app import Services

__all__ = ["bp", "identity_providers", "uia_fallback_page"]

log = logging.getLogger(__name__)

bp = Blueprint("client_sso", __name__)

# What the UIA operations (api/client/auth.py callers) ask the user to confirm.
_OPERATIONS = {
    "change password": "change your account's password",
    "deactivate": "deactivate your account",
    "get login token": "sign in on a new device",
    "replace cross-signing keys": "replace your cross-signing keys",
}


@bp.get("/_matrix/client/v3/login/sso/redirect")
@bp.get("/_matrix/client/r0/login/sso/redirect")
async def get_sso_redirect() -> Response:
    """GET /_matrix/client/v3/login/sso/redirect"""
    svc = _sso()
    redirect_url = _redirect_url_arg()
    ids = [p["id"] for p in identity_providers(svc)]
    if len(ids) == 1:
        return await _redirect_to(svc, ids[0], redirect_url)
    # Several: the user picks (the spec leaves this page to the server).
    links = "\n".join(
        f'<p><a href="{html.escape(_sso_redirect_path(p["id"], redirect_url))}">'
        f'Continue with {html.escape(p["name"])}</a></p>'
        for p in identity_providers(svc)
    )
    return html_page("Sign in", message("Choose how to sign in:") + "\n" + links)


@bp.get("/_matrix/client/v3/login/sso/redirect/<idp_id>")
@bp.get("/_matrix/client/r0/login/sso/redirect/<idp_id>")
async def get_sso_redirect_idp(idp_id: str) -> Response:
    """GET /_matrix/client/v3/login/sso/redirect/{idpId}"""
    svc = _sso()
    redirect_url = _redirect_url_arg()
    if idp_id not in {p["id"] for p in identity_providers(svc)}:
        raise MatrixError(Errcode.NOT_FOUND, f"Unknown identity provider {idp_id!r}", status=404)
    return await _redirect_to(svc, idp_id, redirect_url)


@bp.get("/_matrix/client/v3/login/cas/redirect")
@bp.get("/_matrix/client/r0/login/cas/redirect")
async def get_cas_redirect() -> Response:
    """GET /_matrix/client/v3/login/cas/redirect (deprecated: /login/sso/redirect/cas)"""
    cas = _cas()
    return _found(cas.login_url(cas.service_url(redirect_url=_redirect_url_arg())))


@bp.get("/_matrix/client/r0/login/cas/ticket")
@bp.get("/_matrix/client/v3/login/cas/ticket")
async def get_cas_ticket() -> Response:
    """GET /_matrix/client/r0/login/cas/ticket (the CAS service URL, users/cas.py)"""
    cas = _cas()
    args = request.args
    try:
        ticket = args.get("ticket")
        if not ticket:
            raise MatrixError(Errcode.MISSING_PARAM, "The sign-in server sent no ticket")
        if args.get("session") is not None:
            session_id = args["session"]
            services().uia.sso_session(session_id)  # unknown or finished: said before asking CAS
            user_id = await cas.identify(ticket, cas.service_url(session_id=session_id))
            return _uia_done(session_id, user_id)
        redirect_url = args.get("redirectUrl")
        if redirect_url is None:
            raise MatrixError(Errcode.MISSING_PARAM, "Missing redirectUrl or session")
        redirect_url = check_redirect_url(redirect_url)
        user_id = await cas.sign_in(services().storage, ticket, redirect_url)
        return _continue_page(user_id, redirect_url, trusted=cas.is_trusted_client(redirect_url))
    except MatrixError as e:
        return _error_page(e)


@bp.get("/" + CALLBACK_PATH)
async def get_oidc_callback() -> Response:
    """GET /_dendrite_lite/client/oidc/callback: where an OpenID Connect provider sends the
    browser back (OIDC Core §3.1.2.5/§3.1.2.6; the redirect URI registered there)."""
    oidc = _oidc()
    args = request.args
    try:
        pending = oidc.take(args.get("state", ""))
        provider = oidc.providers[pending.idp_id].config.idp_name
        if args.get("error"):
            raise provider_error(provider, args["error"], args.get("error_description", ""))
        if not args.get("code"):
            raise MatrixError(Errcode.MISSING_PARAM, f"{provider} sent no authorization code")
        svc = services()
        if pending.session_id is not None:
            svc.uia.sso_session(pending.session_id)
            user_id = await oidc.identify(svc.storage, pending, args["code"])
            return _uia_done(pending.session_id, user_id)
        assert pending.redirect_url is not None
        user_id = await oidc.sign_in(svc.storage, pending, args["code"])
        return _continue_page(user_id, pending.redirect_url, trusted=False)
    except MatrixError as e:
        return _error_page(e)


@bp.get("/_dendrite_lite/client/oidc/reauth")
async def get_oidc_reauth() -> Response:
    """The m.login.sso fallback page's link to an OpenID Connect provider: the round trip
    starts when the user follows it (its state lives ten minutes)."""
    oidc = _oidc()
    try:
        session_id = request.args.get("session", "")
        idp_id = request.args.get("idp_id", "")
        services().uia.sso_session(session_id)
        if idp_id not in oidc.providers:
            raise MatrixError(Errcode.NOT_FOUND, f"Unknown identity provider {idp_id!r}", status=404)
        return _found(await oidc.start(idp_id, session_id=session_id))
    except MatrixError as e:
        return _error_page(e)


def identity_providers(svc: Services) -> list[dict[str, str]]:
    """The m.login.sso flow's identity_providers, CAS first."""
    found = [svc.cas.identity_provider] if svc.cas is not None else []
    if svc.oidc is not None:
        found += [p.identity_provider for p in svc.oidc.providers.values()]
    return found


def uia_fallback_page(session_id: str) -> Response:
    """GET /_matrix/client/v3/auth/m.login.sso/fallback/web: what the user is about to confirm,
    and a link to each sign-in server (client-server-api §SSO during User-Interactive
    Authentication, "Confirming the operation")."""
    svc = _sso()
    session = svc.uia.sso_session(session_id)
    links = []
    if svc.cas is not None:
        links.append((svc.cas.name, svc.cas.login_url(svc.cas.service_url(session_id=session_id))))
    for idp_id, provider in (svc.oidc.providers.items() if svc.oidc is not None else ()):
        query = urllib.parse.urlencode({"idp_id": idp_id, "session": session_id})
        links.append((provider.config.idp_name, f"/_dendrite_lite/client/oidc/reauth?{query}"))
    names = " or ".join(name for name, _ in links)
    body = message(
        f"An app is asking to {_describe(session.operation)} for {session.user_id}.",
        f"To confirm, sign in again with {names}. If you did not ask for this, do not "
        "continue: someone else may have access to your account.",
    ) + "".join(
        f'\n<p><a href="{html.escape(target)}">Continue with {html.escape(name)}</a></p>'
        for name, target in links
    )
    return html_page("Confirm it's you", body)


def _continue_page(user_id: str, redirect_url: str, *, trusted: bool) -> Response:
    """The login token on its way to the client: at once for a trusted client, else after a
    page naming the site that gets it (spec §Security considerations: a link could name
    someone else's site as redirectUrl)."""
    token = services().login_tokens.issue(user_id)["login_token"]
    target = login_redirect(redirect_url, token)
    if trusted:
        return _found(target)
    site = urllib.parse.urlsplit(redirect_url)
    where = site.hostname or f"{site.scheme}:"
    body = message(
        f"You are signed in as {user_id}.",
        f"Continue to {where} to finish signing in there. If you don't recognise this address, "
        "close this window instead: whoever runs it would get access to your account.",
    ) + f'\n<p><a href="{html.escape(target)}">Continue to {html.escape(where)}</a></p>'
    return html_page("Continue to your app", body)


def _uia_done(session_id: str, user_id: str) -> Response:
    """The m.login.sso stage done in the browser as `user_id` (users/uia.py's same-user rule)."""
    session = services().uia.complete_sso(session_id, user_id)
    if session.sso_user_id != session.user_id:
        # Recorded all the same, and the page still tells the app it is done: its resubmission
        # is then refused (403), which is how the app learns the outcome.
        log.info("SSO for %s's UIA session completed as %s", session.user_id, user_id)
        return auth_done_page(
            f"You signed in as {user_id}, but it is {session.user_id} whose action is being "
            "confirmed, so it will be refused.",
            "You may close this window.",
            title="Single sign-on",
        )
    return auth_done_page()


def _error_page(e: MatrixError) -> Response:
    # The browser shows this, not a client: a page, with the error's status.
    return html_page(
        "Sign-in failed",
        message(e.error, "You may close this window and try again from your app."),
        status=e.status,
    )


async def _redirect_to(svc: Services, idp_id: str, redirect_url: str) -> Response:
    if idp_id == CAS_IDP_ID and svc.cas is not None:
        return _found(svc.cas.login_url(svc.cas.service_url(redirect_url=redirect_url)))
    assert svc.oidc is not None
    try:
        return _found(await svc.oidc.start(idp_id, redirect_url=redirect_url))
    except MatrixError as e:  # the provider is down: the browser shows a page
        return _error_page(e)


def _redirect_url_arg() -> str:
    redirect_url = request.args.get("redirectUrl")
    if not redirect_url:
        raise MatrixError(Errcode.MISSING_PARAM, "Missing redirectUrl")
    return check_redirect_url(redirect_url)


def _sso_redirect_path(idp_id: str, redirect_url: str) -> str:
    return f"/_matrix/client/v3/login/sso/redirect/{urllib.parse.quote(idp_id)}?" + (
        urllib.parse.urlencode({"redirectUrl": redirect_url})
    )


def _found(location: str) -> Response:
    return Response(b"", status=302, headers={"Location": location, "Cache-Control": "no-store"})


def _sso() -> Services:
    svc = services()
    if not svc.sso_enabled:
        raise MatrixError(Errcode.UNRECOGNIZED, "Single sign-on is not configured", status=404)
    return svc


def _cas() -> CasService:
    cas = services().cas
    if cas is None:
        raise MatrixError(Errcode.UNRECOGNIZED, "CAS sign-in is not configured", status=404)
    return cas


def _oidc() -> OidcService:
    oidc = services().oidc
    if oidc is None:
        raise MatrixError(Errcode.UNRECOGNIZED, "OpenID Connect sign-in is not configured", status=404)
    return oidc


def _describe(operation: str) -> str:
    what = operation.rsplit(" by ", 1)[0]  # uia.verify_password_of appends the user
    if what.startswith("delete devices "):
        return "remove the devices " + ", ".join(what.removeprefix("delete devices ").split("\0"))
    if what.startswith("delete device "):
        return "remove the device " + what.removeprefix("delete device ")
    return _OPERATIONS.get(what, what)
