"""Outgoing email through the self-hoster's SMTP server ([email] in the config), with aiosmtplib.

One plain-text message per call, one SMTP connection per message: this server mails a few
confirmation links a day, so a pooled connection would only hold a socket open for nothing.
`EmailUnavailable` says the mail server could not take the message (down, refused our login,
timed out: not the user's fault), `EmailRefused` that it refused the recipient address.
"""

from __future__ import annotations

import email.utils
import logging
import ssl
from collections.abc import Callable, Mapping
from email.message import EmailMessage
from typing import TYPE_CHECKING

from dendrite_lite.config import EmailConfig, split_host

if TYPE_CHECKING:
    import aiosmtplib

__all__ = [
    "EmailRefused", "EmailSender", "EmailUnavailable", "default_from_address", "smtp_client",
    "smtp_tls_context",
]

log = logging.getLogger(__name__)

# A user waits for the answer of /requestToken: give up long before their client does.
TIMEOUT_S = 20.0


class EmailUnavailable(Exception):
    """The SMTP server could not be reached or would not take the message."""


class EmailRefused(Exception):
    """The SMTP server refused the recipient address."""


def default_from_address(server_name: str) -> str:
    """noreply@ the server name's host (its port dropped)."""
    return f"noreply@{split_host(server_name)}"


class EmailSender:
    """One per server (email.smtp_host set)."""

    def __init__(self, config: EmailConfig, server_name: str) -> None:
        self._config = config
        self._from = config.from_address or default_from_address(server_name)
        self._domain = email.utils.parseaddr(self._from)[1].rpartition("@")[2] or "localhost"
        self._tls_context: ssl.SSLContext | None = None

    async def send(
        self, to: str, subject: str, text: str, *, html: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Send a plain-text message to `to` (with an HTML alternative and extra headers, if
        given); EmailUnavailable or EmailRefused if it could not."""
        import aiosmtplib  # imported on first use: a server without [email] never loads it

        message = EmailMessage()
        message["From"] = self._from
        message["To"] = to
        message["Subject"] = subject
        message["Date"] = email.utils.formatdate(localtime=False)
        message["Message-ID"] = email.utils.make_msgid(domain=self._domain)
        # Quoted-printable keeps long lines (the link) intact: a mail client joins its soft
        # line breaks, and so does every MIME parser.
        message.set_content(text, cte="quoted-printable")
        if html is not None:
            message.add_alternative(html, subtype="html", cte="quoted-printable")
        for name, value in (headers or {}).items():
            message[name] = value
        try:
            async with smtp_client(self._config, self._tls, TIMEOUT_S) as smtp:
                await smtp.send_message(message)
        except aiosmtplib.SMTPRecipientsRefused as e:
            log.info("the SMTP server refused the address %s: %s", to, e)
            raise EmailRefused(str(e)) from None
        except (aiosmtplib.SMTPException, OSError) as e:
            c = self._config
            log.warning("email to %s via %s:%d failed: %s", to, c.smtp_host, c.port, e)
            raise EmailUnavailable(str(e) or type(e).__name__) from None

    def _tls(self) -> ssl.SSLContext:
        if self._tls_context is None:
            self._tls_context = smtp_tls_context(self._config)
        return self._tls_context


def smtp_tls_context(config: EmailConfig) -> ssl.SSLContext:
    """The system CAs plus email.ca_file, checking the certificate for smtp_host."""
    context = ssl.create_default_context()
    if config.ca_file is not None:
        context.load_verify_locations(cafile=str(config.ca_file))
    return context


def smtp_client(config: EmailConfig, tls: Callable[[], ssl.SSLContext], timeout_s: float) -> aiosmtplib.SMTP:
    """An unconnected client for [email]'s server: `async with` connects (TLS or STARTTLS as
    smtp_tls says) and logs in when smtp_user is set. The sender and the doctor's check share it,
    so the doctor tests exactly the connection mail goes out on."""
    import aiosmtplib  # imported on first use: a server without [email] never loads it

    mode = config.smtp_tls
    return aiosmtplib.SMTP(
        hostname=config.smtp_host.strip("[]"),
        port=config.port,
        username=config.smtp_user or None,
        password=config.smtp_password or None,
        use_tls=mode == "tls",
        # False, not None: "none" never upgrades (None would try STARTTLS whenever the server
        # offers it, and fail on a relay with a certificate nobody trusts).
        start_tls=mode == "starttls",
        tls_context=tls() if mode != "none" else None,
        timeout=timeout_s,
    )
