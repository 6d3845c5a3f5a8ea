"""Client-server API: the fallback pages of User-Interactive Authentication (client-server-api
§Fallback): a client that cannot do a stage itself opens
/_matrix/client/v3/auth/<stage>/fallback/web?session=<id> in a browser, the user does the stage
there, and the client then resubmits its request with just the session id.

Stages with a page: m.login.recaptcha (when open registration asks for one) and m.login.sso
(with [cas] or [[oidc_providers]] configured: a page saying what is being confirmed, whose links
go to the sign-in servers; api/client/sso.py). Any other stage answers 404 M_NOT_FOUND.
"""

from __future__ import annotations

import html
import urllib.parse

from quart import Blueprint, Response, request

from dendrite_lite.api.app import services
from dendrite_lite.api.client import sso
from dendrite_lite.api.client.auth import client_ip
from dendrite_lite.api.client.html_pages import auth_done_page, html_page
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.users.registration import captcha_site_key
from dendrite_lite.users.uia import RECAPTCHA, SSO, UiaRequired

__all__ = ["bp"]

bp = Blueprint("client_auth_fallback", __name__)

# The widget script, from the host that also serves siteverify where google.com is blocked.
_RECAPTCHA_SCRIPT = "https://www.recaptcha.net/recaptcha/api.js"

_CAPTCHA_HEAD = f"""<script src="{_RECAPTCHA_SCRIPT}" async defer></script>
<script>function captchaSolved() {{ document.getElementById("captcha").submit(); }}</script>"""


_CAPTCHA_BODY = """<form id="captcha" method="post" action="{action}">
<p>Please show that you are not a robot.</p>
{error}<div class="g-recaptcha" data-sitekey="{site_key}" data-callback="captchaSolved"></div>
<input type="hidden" name="session" value="{session}">
<noscript><p>This check needs JavaScript.</p></noscript>
</form>"""


@bp.get("/_matrix/client/v3/auth/<stage>/fallback/web")
@bp.get("/_matrix/client/r0/auth/<stage>/fallback/web")
async def get_fallback(stage: str) -> Response:
    """GET /_matrix/client/v3/auth/{authType}/fallback/web"""
    if stage == SSO and services().sso_enabled:
        return sso.uia_fallback_page(_session_arg())
    site_key = _captcha_site_key(stage)
    session = _session_arg()
    if not services().uia.known(session):
        raise MatrixError(Errcode.UNKNOWN, "Unknown UIA session id", status=400)
    return _captcha_page(stage, session, site_key)


def _session_arg() -> str:
    session = request.args.get("session")
    if not session:
        raise MatrixError(Errcode.MISSING_PARAM, "Missing session")
    return session


@bp.post("/_matrix/client/v3/auth/<stage>/fallback/web")
@bp.post("/_matrix/client/r0/auth/<stage>/fallback/web")
async def post_fallback(stage: str) -> Response:
    """POST /_matrix/client/v3/auth/{authType}/fallback/web (the page's form)"""
    site_key = _captcha_site_key(stage)
    form = urllib.parse.parse_qs((await request.get_data()).decode("utf-8", "replace"))
    session = (form.get("session") or [request.args.get("session", "")])[0]
    answer = (form.get("g-recaptcha-response") or [""])[0]
    if not session:
        raise MatrixError(Errcode.MISSING_PARAM, "Missing session")
    if not answer:
        return _captcha_page(stage, session, site_key, error="Please solve the captcha.")
    try:
        await services().uia.complete_recaptcha_fallback(session, answer, ip=client_ip())
    except UiaRequired as e:  # refused: the user may try again on the same page
        return _captcha_page(stage, session, site_key, error=e.error)
    except MatrixError as e:
        if e.status != 502:  # an unknown session or one not at this stage: a bad request
            raise
        return _captcha_page(stage, session, site_key, error=e.error, status=502)
    return auth_done_page()


def _captcha_site_key(stage: str) -> str:
    site_key = captcha_site_key(services().config)
    if stage != RECAPTCHA or not site_key:
        raise MatrixError(Errcode.NOT_FOUND, f"No fallback page for {stage!r}")
    return site_key


def _captcha_page(
    stage: str, session: str, site_key: str, *, error: str = "", status: int = 200
) -> Response:
    action = f"/_matrix/client/v3/auth/{urllib.parse.quote(stage)}/fallback/web?" + (
        urllib.parse.urlencode({"session": session})
    )
    body = _CAPTCHA_BODY.format(
        action=html.escape(action), site_key=html.escape(site_key),
        session=html.escape(session), error=f"<p>{html.escape(error)}</p>\n" if error else "",
    )
    return html_page("Sign-up check", body, head=_CAPTCHA_HEAD, status=status)
