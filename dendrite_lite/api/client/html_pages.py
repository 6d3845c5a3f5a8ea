"""The few HTML pages the client API serves to a browser: UIA fallback pages and the single
sign-on pages. One frame for all of them, never cached and never inside another site's frame
(each asks the user to act: solve a captcha, continue to an app, confirm an operation)."""

from __future__ import annotations

import html

from quart import Response

__all__ = ["auth_done_page", "html_page", "message"]

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{title}</title>
{head}
</head>
<body>
{body}
</body>
</html>
"""

# The script the spec requires once a UIA stage is done on its fallback page
# (client-server-api §Fallback).
_AUTH_DONE = """<script>
if (window.onAuthDone) {
    window.onAuthDone();
} else if (window.opener && window.opener.postMessage) {
    window.opener.postMessage("authDone", "*");
}
</script>"""


def message(*paragraphs: str) -> str:
    """Plain-text paragraphs, escaped."""
    return "\n".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)


def auth_done_page(*paragraphs: str, title: str = "Thank you") -> Response:
    """The page that ends a UIA stage done in the browser: it tells the app to resubmit."""
    text = paragraphs or ("Thank you. You may now close this window and go back to your app.",)
    return html_page(title, message(*text) + "\n" + _AUTH_DONE)


def html_page(title: str, body: str, *, head: str = "", status: int = 200) -> Response:
    """`body` and `head` are markup: escape what goes into them."""
    page = _PAGE.format(title=html.escape(title), head=head, body=body)
    headers = {
        "Cache-Control": "no-store",
        "X-Frame-Options": "DENY",
        "Content-Security-Policy": "frame-ancestors 'none'",
        "Referrer-Policy": "no-referrer",
    }
    return Response(page, status=status, content_type="text/html; charset=utf-8", headers=headers)
