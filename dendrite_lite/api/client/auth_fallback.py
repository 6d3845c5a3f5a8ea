"""Client-server API: the fallback pages of User-Interactive Authentication (client-server-api
§Fallback): a client that cannot do a stage itself opens
/_matrix/client/v3/auth/<stage>/fallback/web?session=<id> in a browser, the user does the stage
there, and the client then resubmits its request with just the session id.

Stages with a page: m.login.recaptcha (when open registration asks for one). Any other stage
answers 404 M_NOT_FOUND.
"""

from __future__ import annotations

import html
import urllib.parse

from quart import Blueprint, Response, request

from dendrite_lite.api.app import services
from dendrite_lite.api.client.auth import client_ip
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.users.registration import captcha_site_key
from dendrite_lite.users.uia import RECAPTCHA, UiaRequired

__all__ = ["bp"]

bp = Blueprint("client_auth_fallback", __name__)

# The widget script, from the host that also serves siteverify where google.com is blocked.
_RECAPTCHA_SCRIPT = "https://www.recaptcha.net/recaptcha/api.js"

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign-up check</title>
{head}
</head>
<body>
{body}
</body>
</html>
"""

_CAPTCHA_HEAD = f"""<script src="{_RECAPTCHA_SCRIPT}" async defer></script>
<script>function captchaSolved() {{ document.getElementById("captcha").submit(); }}</script>"""

_CAPTCHA_BODY = """<form id="captcha" method="post" action="{action}">
<p>Please show that you are not a robot.</p>
{error}<div class="g-recaptcha" data-sitekey="{site_key}" data-callback="captchaSolved"></div>
<input type="hidden" name="session" value="{session}">
<noscript><p>This check needs JavaScript.</p></noscript>
</form>"""

# The script the spec requires once the stage is done.
_DONE_BODY = """<p>Thank you. You may now close this window and go back to your app.</p>
<script>
if (window.onAuthDone) {
    window.onAuthDone();
} else if (window.opener && window.opener.postMessage) {
    window.opener.postMessage("authDone", "*");
}
</script>"""


@bp.get("/_matrix/client/v3/auth/<stage>/fallback/web")
@bp.get("/_matrix/client/r0/auth/<stage>/fallback/web")
async def get_fallback(stage: str) -> Response:
    """GET /_matrix/client/v3/auth/{authType}/fallback/web"""
    site_key = _captcha_site_key(stage)
    session = request.args.get("session")
    if not session:
        raise MatrixError(Errcode.MISSING_PARAM, "Missing session")
    if not services().uia.known(session):
        raise MatrixError(Errcode.UNKNOWN, "Unknown UIA session id", status=400)
    return _captcha_page(stage, session, site_key)


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
    return _html(_DONE_BODY)


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
    return _html(body, head=_CAPTCHA_HEAD, status=status)


def _html(body: str, *, head: str = "", status: int = 200) -> Response:
    page = _PAGE.format(head=head, body=body)
    # The page shows a captcha: never from a cache, and never inside another site's frame.
    headers = {"Cache-Control": "no-store", "X-Frame-Options": "DENY"}
    return Response(page, status=status, content_type="text/html; charset=utf-8", headers=headers)
