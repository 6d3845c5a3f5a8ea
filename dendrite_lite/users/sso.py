"""What every kind of single sign-on shares (client-server-api §SSO client
login/authentication), whichever server the user signs in at (users/cas.py, users/oidc.py):
the client's redirectUrl and the login token sent back to it, the account a first sign-in
makes, and the pick of one of several identity providers.
"""

from __future__ import annotations

import logging
import re
import urllib.parse
from collections.abc import Callable

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.storage import Storage
from dendrite_lite.users.accounts import create_account, get_account

__all__ = [
    "MAX_REDIRECT_URL_CHARS",
    "check_redirect_url",
    "login_redirect",
    "register_sso_user",
    "sign_in_unavailable",
]

log = logging.getLogger(__name__)

# A redirectUrl travels inside the URL of the sign-in server's round trip, which servers and
# proxies bound.
MAX_REDIRECT_URL_CHARS = 2048
# Schemes a page of ours must never link to, nor a login token be sent to: script and local
# content. Other schemes stay allowed: mobile clients receive the token at their own scheme
# (element://connect, im.fluffychat://login).
_REFUSED_SCHEMES = frozenset({"javascript", "vbscript", "data", "file", "blob", "about", "filesystem"})
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")


def sign_in_unavailable(why: str) -> MatrixError:
    """The sign-in server failed us (down, or an answer we cannot use): not the user's failure,
    they may try again."""
    return MatrixError(
        Errcode.UNKNOWN, f"The sign-in server could not confirm the sign-in ({why}); try again",
        status=502,
    )


def check_redirect_url(redirect_url: str) -> str:
    """The client's redirectUrl, or 400 M_INVALID_PARAM for one no login token may go to."""
    scheme = urllib.parse.urlsplit(redirect_url).scheme if redirect_url else ""
    if (
        not _SCHEME_RE.fullmatch(scheme)
        or scheme.lower() in _REFUSED_SCHEMES
        or len(redirect_url) > MAX_REDIRECT_URL_CHARS
        # ASCII without controls or spaces: a URL as a client sends it, percent-encoded (it
        # may end up in a Location header, which is ASCII).
        or not redirect_url.isascii()
        or any(ord(c) < 0x21 or ord(c) == 0x7F for c in redirect_url)
        or (scheme.lower() in ("http", "https") and not urllib.parse.urlsplit(redirect_url).hostname)
    ):
        raise MatrixError(
            Errcode.INVALID_PARAM,
            "redirectUrl must be an absolute URL of your app (http, https or the app's own scheme)",
        )
    return redirect_url


def login_redirect(redirect_url: str, login_token: str) -> str:
    """redirect_url with ?loginToken= added (any loginToken it had is dropped: spec)."""
    parts = urllib.parse.urlsplit(redirect_url)
    query = [
        (k, v) for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        if k != "loginToken"
    ]
    query.append(("loginToken", login_token))
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


async def register_sso_user(
    storage: Storage,
    user_id: str,
    *,
    auto_register: bool,
    may_register: Callable[[str], bool],
    displayname: str | None,
    via: str,
) -> bool:
    """Make the account of a first sign-in through `via` (no password: it signs in through
    single sign-on only). True when it was made now, False when it already existed (a
    concurrent first sign-in, or an account the caller lets this sign-in use); 403 when the
    server makes no accounts this way, M_EXCLUSIVE for an application service's user id."""
    account = await get_account(storage, user_id)
    if account is not None:
        if account.deactivated:
            raise MatrixError(Errcode.USER_DEACTIVATED, f"{user_id} has been deactivated")
        return False
    if not auto_register:
        raise MatrixError(
            Errcode.FORBIDDEN,
            f"There is no account {user_id} on this server; ask its admin to create one",
        )
    if not may_register(user_id):
        raise MatrixError(Errcode.EXCLUSIVE, f"{user_id} is reserved by an application service")
    try:
        await create_account(storage, user_id, None, displayname=displayname or None)
    except MatrixError as e:
        if e.errcode != Errcode.USER_IN_USE:  # a concurrent first sign-in made it: fine
            raise
        return False
    log.info("registered %s at its first %s sign-in", user_id, via)
    return True
