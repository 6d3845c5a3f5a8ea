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
from email.message import EmailMessage

from dendrite_lite.config import EmailConfig, split_host

__all__ = ["EmailRefused", "EmailSender", "EmailUnavailable", "default_from_address"]

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

    async def send(self, to: str, subject: str, text: str) -> None:
        """Send a plain-text message to `to`; EmailUnavailable or EmailRefused if it could not."""
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
        c = self._config
        tls = c.smtp_tls
        try:
            await aiosmtplib.send(
                message,
                hostname=c.smtp_host.strip("[]"),
                port=c.port,
                username=c.smtp_user or None,
                password=c.smtp_password or None,
                use_tls=tls == "tls",
                # False, not None: "none" never upgrades (None would try STARTTLS whenever the
                # server offers it, and fail on a relay with a certificate nobody trusts).
                start_tls=tls == "starttls",
                tls_context=self._tls() if tls != "none" else None,
                timeout=TIMEOUT_S,
            )
        except aiosmtplib.SMTPRecipientsRefused as e:
            log.info("the SMTP server refused the address %s: %s", to, e)
            raise EmailRefused(str(e)) from None
        except (aiosmtplib.SMTPException, OSError) as e:
            log.warning("email to %s via %s:%d failed: %s", to, c.smtp_host, c.port, e)
            raise EmailUnavailable(str(e) or type(e).__name__) from None

    def _tls(self) -> ssl.SSLContext:
        if self._tls_context is None:
            context = ssl.create_default_context()
            if self._config.ca_file is not None:
                context.load_verify_locations(cafile=str(self._config.ca_file))
            self._tls_context = context
        return self._tls_context
