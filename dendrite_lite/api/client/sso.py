"""Client-server API: single sign-on through CAS (client-server-api §SSO client
login/authentication, sso_login_redirect.yaml; users/cas.py has the protocol).

- GET /login/sso/redirect, /login/sso/redirect/{idpId} and the deprecated /login/cas/redirect:
  302 to the CAS server's sign-in page.
- GET /login/cas/ticket (r0 and v3), where the CAS server sends the browser back: for a login
  (?redirectUrl=) a login token for the client, for user-interactive authentication
  (?session=) the m.login.sso stage. It answers the browser with HTML pages, errors included.
- The m.login.sso UIA fallback page (`uia_fallback_page`, routed by auth_fallback.py).

With [cas] off every route here answers 404 M_UNRECOGNIZED, like any unknown endpoint.

NOTSPEC: the spec asks for a login token that lives about five seconds; ours live two minutes
(users/login_tokens.py), as Synapse's, since the user may first read the page that asks them
whether to continue to their app. No cookie ties the callback to the browser that started the
round trip (the spec's optional guard against unsolicited callbacks): CAS sends the browser
through its own pages, and the confirmation pages stand in for it.
"""

from __future__ import annotations

import html
import logging
import urllib.parse

from quart import Blueprint, Response, request

from dendrite_lite.api.app import services
from dendrite_lite.api.client.html_pages import auth_done_page, html_page, message
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.users.cas import (
    CAS_IDP_ID,
    CasService,
    check_redirect_url,
    login_redirect,
)

__all__ = ["bp", "uia_fallback_page"]

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
@bp.get("/_matrix/client/v3/login/cas/redirect")
@bp.get("/_matrix/client/r0/login/cas/redirect")
async def get_sso_redirect() -> Response:
    """GET /_matrix/client/v3/login/sso/redirect"""
    return _redirect_to_cas(_cas())


@bp.get("/_matrix/client/v3/login/sso/redirect/<idp_id>")
@bp.get("/_matrix/client/r0/login/sso/redirect/<idp_id>")
async def get_sso_redirect_idp(idp_id: str) -> Response:
    """GET /_matrix/client/v3/login/sso/redirect/{idpId}"""
    cas = _cas()
    if idp_id != CAS_IDP_ID:
        raise MatrixError(Errcode.NOT_FOUND, f"Unknown identity provider {idp_id!r}", status=404)
    return _redirect_to_cas(cas)


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
            return await _uia_ticket(cas, ticket, args["session"])
        redirect_url = args.get("redirectUrl")
        if redirect_url is None:
            raise MatrixError(Errcode.MISSING_PARAM, "Missing redirectUrl or session")
        return await _login_ticket(cas, ticket, check_redirect_url(redirect_url))
    except MatrixError as e:
        # The browser shows this, not a client: a page, with the error's status.
        return html_page(
            "Sign-in failed",
            message(e.error, "You may close this window and try again from your app."),
            status=e.status,
        )


def uia_fallback_page(session_id: str) -> Response:
    """GET /_matrix/client/v3/auth/m.login.sso/fallback/web: what the user is about to confirm,
    and the link to the CAS server (client-server-api §SSO during User-Interactive
    Authentication, "Confirming the operation")."""
    svc = services()
    cas = _cas()
    session = svc.uia.sso_session(session_id)
    target = cas.login_url(cas.service_url(session_id=session_id))
    body = message(
        f"An app is asking to {_describe(session.operation)} for {session.user_id}.",
        f"To confirm, sign in again with {cas.name}. If you did not ask for this, do not "
        "continue: someone else may have access to your account.",
    ) + f'\n<p><a href="{html.escape(target)}">Continue with {html.escape(cas.name)}</a></p>'
    return html_page("Confirm it's you", body)


async def _login_ticket(cas: CasService, ticket: str, redirect_url: str) -> Response:
    svc = services()
    user_id = await cas.sign_in(svc.storage, ticket, redirect_url)
    token = svc.login_tokens.issue(user_id)["login_token"]
    target = login_redirect(redirect_url, token)
    if cas.is_trusted_client(redirect_url):
        return _found(target)
    # Before the token leaves: the user sees which site gets their login (spec §Security
    # considerations: a link could name someone else's site as redirectUrl).
    site = urllib.parse.urlsplit(redirect_url)
    where = site.hostname or f"{site.scheme}:"
    body = message(
        f"You are signed in as {user_id}.",
        f"Continue to {where} to finish signing in there. If you don't recognise this address, "
        "close this window instead: whoever runs it would get access to your account.",
    ) + f'\n<p><a href="{html.escape(target)}">Continue to {html.escape(where)}</a></p>'
    return html_page("Continue to your app", body)


async def _uia_ticket(cas: CasService, ticket: str, session_id: str) -> Response:
    svc = services()
    svc.uia.sso_session(session_id)  # unknown or finished: said before asking the CAS server
    user_id = await cas.identify(ticket, cas.service_url(session_id=session_id))
    session = svc.uia.complete_sso(session_id, user_id)
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


def _redirect_to_cas(cas: CasService) -> Response:
    redirect_url = request.args.get("redirectUrl")
    if not redirect_url:
        raise MatrixError(Errcode.MISSING_PARAM, "Missing redirectUrl")
    return _found(cas.login_url(cas.service_url(redirect_url=check_redirect_url(redirect_url))))


def _found(location: str) -> Response:
    return Response(b"", status=302, headers={"Location": location, "Cache-Control": "no-store"})


def _cas() -> CasService:
    cas = services().cas
    if cas is None:
        raise MatrixError(Errcode.UNRECOGNIZED, "Single sign-on is not configured", status=404)
    return cas


def _describe(operation: str) -> str:
    what = operation.rsplit(" by ", 1)[0]  # uia.verify_password_of appends the user
    if what.startswith("delete devices "):
        return "remove the devices " + ", ".join(what.removeprefix("delete devices ").split("\0"))
    if what.startswith("delete device "):
        return "remove the device " + what.removeprefix("delete device ")
    return _OPERATIONS.get(what, what)
