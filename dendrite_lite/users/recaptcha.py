"""Checking a reCAPTCHA answer for the m.login.recaptcha UIA stage (client-server-api §Google
ReCaptcha: the client sends the widget's `response` in the auth dict).

The answer goes to the siteverify API (Google's, or whatever `registration.recaptcha_siteverify_api`
names): a form POST of secret, response and the user's IP, answered {"success": true|false, ...}.
This module only says yes or no, or that it could not ask; what that means for the UIA session
is uia.py's business. The hostname in the answer is not compared with ours, as Synapse does not:
the captcha is solved in whatever client the user has, not on a page of this server.
"""

from __future__ import annotations

import json
import logging
import ssl
import urllib.parse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

__all__ = ["CaptchaUnavailable", "Recaptcha"]

log = logging.getLogger(__name__)

# Google answers within a second; a user waits on this, so give up long before a client does.
TIMEOUT_S = 10.0
# The answer is a small JSON object (success, challenge_ts, hostname, error-codes).
MAX_ANSWER_BYTES = 64 * 1024


class CaptchaUnavailable(Exception):
    """The siteverify API could not be asked or gave no usable answer (not the user's fault)."""


class Recaptcha:
    """One per server (registration.recaptcha_private_key set); its HTTP client is pooled."""

    def __init__(self, private_key: str, siteverify_api: str) -> None:
        self._secret = private_key
        self._url = siteverify_api
        self._client: httpx.AsyncClient | None = None

    async def verify(self, response: str, remote_ip: str | None) -> bool:
        """Whether the captcha service accepts `response`; CaptchaUnavailable if it cannot say."""
        from dendrite_lite.outbound_http import HttpError, fetch

        form = {"secret": self._secret, "response": response}
        if remote_ip:
            form["remoteip"] = remote_ip
        try:
            answer = await fetch(
                self._http(), "POST", self._url, max_body_bytes=MAX_ANSWER_BYTES,
                timeout_s=TIMEOUT_S, connect_timeout_s=TIMEOUT_S,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                content=urllib.parse.urlencode(form).encode("ascii"),
            )
        except HttpError as e:
            log.warning("reCAPTCHA siteverify %s unreachable: %s", self._url, e)
            raise CaptchaUnavailable(str(e)) from None
        try:
            body = json.loads(answer.body)
        except ValueError:
            body = None
        if answer.status != 200 or not isinstance(body, dict):
            log.warning("reCAPTCHA siteverify %s answered %d, not a JSON object", self._url, answer.status)
            raise CaptchaUnavailable(f"siteverify answered {answer.status}")
        if body.get("success") is not True:
            log.info("reCAPTCHA answer refused: %s", body.get("error-codes"))
            return False
        return True

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            # Imported on first use, like every outbound client's httpx (not loaded at start-up).
            import httpx

            from dendrite_lite.outbound_http import new_client

            transport = httpx.AsyncHTTPTransport(verify=ssl.create_default_context())
            self._client = new_client(transport)
        return self._client
