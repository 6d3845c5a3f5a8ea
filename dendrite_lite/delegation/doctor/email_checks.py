"""Whether the mail server of [email] takes the confirmation mails this server sends (sign-up,
adding an address, a forgotten password), for the configured server: the same client the
sender uses (users/email_sender.py) connects, upgrades to TLS as `email.smtp_tls` says,
checking the certificate, logs in when `email.smtp_user` is set, and offers `MAIL FROM` with
the sender address, which a relay refuses for an address the account may not send as. Nothing
is mailed: the transaction is reset before any recipient.

A mail problem otherwise shows only when a user asks for a link and gets an error (502) or no
mail, so the doctor is where a self-hoster finds it first.
"""

from __future__ import annotations

import ssl
from email.utils import parseaddr
from typing import TYPE_CHECKING

from dendrite_lite.config import EmailConfig
from dendrite_lite.delegation.doctor.findings import Finding, Status
from dendrite_lite.users.email_sender import (
    default_from_address,
    smtp_client,
    smtp_tls_context,
)

if TYPE_CHECKING:
    import aiosmtplib

__all__ = ["email_findings"]

AREA = "email"
README_SECTION = 'README, "Email"'


async def email_findings(config: EmailConfig, server_name: str, timeout_s: float) -> list[Finding]:
    if not config.enabled:
        return [Finding(
            "email.smtp", AREA, Status.OK,
            "No mail server is configured ([email] smtp_host): nobody can sign up with an email"
            " address, add one to their account or reset a forgotten password by email. See the"
            f" {README_SECTION} to turn it on.",
        )]
    import aiosmtplib  # only when [email] is on, as in the sender

    where = f"the mail server {config.smtp_host}:{config.port}"
    sender = config.from_address or default_from_address(server_name)
    client = smtp_client(config, lambda: smtp_tls_context(config), timeout_s)
    try:
        await client.connect()
    except aiosmtplib.SMTPAuthenticationError as e:
        return [_login_refused(config, where, e)]
    except (aiosmtplib.SMTPException, OSError) as e:  # ssl.SSLError is an OSError
        return [_connect_failed(config, where, e)]
    try:
        return [await _offer_sender(client, config, where, sender)]
    finally:
        try:
            await client.quit()
        except (aiosmtplib.SMTPException, OSError):
            client.close()


async def _offer_sender(client: aiosmtplib.SMTP, config: EmailConfig, where: str, sender: str) -> Finding:
    import aiosmtplib

    address = parseaddr(sender)[1]
    try:
        await client.mail(address)
        await client.rset()
    except aiosmtplib.SMTPSenderRefused as e:
        return Finding(
            "email.smtp_sender", AREA, Status.FAIL,
            f"{where} refuses mail from {address}: {e.code} {e.message}.",
            "Set [email] from_address to an address this mail account may send as (often the"
            " account's own address, e.g. from_address = \"Family Matrix <you@example.org>\").",
        )
    except (aiosmtplib.SMTPException, OSError) as e:
        return _connect_failed(config, where, e)
    how = {"none": "without TLS", "starttls": "with STARTTLS", "tls": "over TLS"}[config.smtp_tls]
    login = f", logged in as {config.smtp_user}" if config.smtp_user else ""
    return Finding(
        "email.smtp", AREA, Status.OK,
        f"{where} took a connection {how}{login} and accepts mail from {address}: confirmation"
        " and password-reset mails can go out.",
    )


def _login_refused(config: EmailConfig, where: str, e: aiosmtplib.SMTPAuthenticationError) -> Finding:
    return Finding(
        "email.smtp_login", AREA, Status.FAIL,
        f"{where} refused the login of {config.smtp_user}: {e.code} {e.message}.",
        "Check [email] smtp_user and smtp_password. Many providers (Gmail, Fastmail, iCloud) want"
        " an app password made for this server instead of the account's own password.",
    )


def _connect_failed(config: EmailConfig, where: str, e: BaseException) -> Finding:
    # aiosmtplib wraps a failed handshake in its own SMTPConnectError: find the TLS error.
    cause: BaseException | None = e
    while cause is not None and not isinstance(cause, ssl.SSLError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, ssl.SSLCertVerificationError):
        return Finding(
            "email.smtp_tls", AREA, Status.FAIL,
            f"{where}: its TLS certificate is not trusted: {cause.verify_message or cause}.",
            "Use the mail server's name as its certificate gives it in [email] smtp_host, or, for"
            " a relay with a certificate of its own CA, set [email] ca_file to that CA.",
        )
    reason = str(e) or type(e).__name__
    if cause is not None or "STARTTLS" in reason:  # aiosmtplib: STARTTLS not offered
        return Finding(
            "email.smtp_tls", AREA, Status.FAIL, f"{where}: TLS did not start: {reason}.",
            "Match [email] smtp_tls to the port: \"starttls\" for 587, \"tls\" for 465, and"
            " \"none\" only for a relay on this machine or your own network (port 25).",
        )
    return Finding(
        "email.smtp_reachable", AREA, Status.FAIL, f"{where} cannot be reached: {reason}.",
        "Check [email] smtp_host and smtp_port. Many hosting providers block outgoing port 25:"
        " use your mail provider's submission port (587 with smtp_tls = \"starttls\", or 465"
        " with \"tls\") and open it for outgoing connections in the firewall.",
    )
