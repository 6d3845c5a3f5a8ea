"""The doctor's mail check (delegation/doctor/email_checks.py) against real SMTP servers on
loopback (aiosmtpd): plain, STARTTLS with a login and a certificate of our own, a wrong
password, an untrusted certificate, a relay refusing the sender, and a port nothing listens
on. The check must never send a mail."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from dendrite_lite.config import EmailConfig
from dendrite_lite.delegation.doctor import Finding, Status
from dendrite_lite.delegation.doctor.email_checks import email_findings
from tests.integration.smtp_sink import SmtpSink, smtp_tls, start_sink
from tests.interop.synapse_server import free_port

SERVER = "family.example:8448"


async def _check(**config: Any) -> Finding:
    (finding,) = await email_findings(EmailConfig(**config), SERVER, timeout_s=3)
    return finding


class _PickyRelay(SmtpSink):
    """A relay that only lets its account send as matrix@example.org."""

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address != "matrix@example.org":
            return "553 5.7.1 Sender address rejected: not owned by user"
        envelope.mail_from = address
        return "250 OK"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ssl.SSLContext]:
    return smtp_tls(tmp_path_factory.mktemp("smtp-cert"))


@pytest.fixture
async def submission(certificate: tuple[Path, ssl.SSLContext]) -> AsyncIterator[SmtpSink]:
    """A provider's submission port: STARTTLS required, then a login (password app-password)."""

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        assert isinstance(data, LoginPassword)
        # handled=False: aiosmtpd answers 535 itself (True would leave the client waiting).
        return AuthResult(success=(data.login, data.password) == (b"matrix", b"app-password"), handled=False)

    sink = _PickyRelay()
    server = await start_sink(
        sink, tls_context=certificate[1], require_starttls=True, auth_required=True,
        authenticator=authenticator,
    )
    yield sink
    server.close()
    await server.wait_closed()


async def test_no_mail_server_configured() -> None:
    finding = await _check()
    assert (finding.check, finding.status, finding.fix) == ("email.smtp", Status.OK, None)
    assert "nobody can sign up with an email address" in finding.why


async def test_plain_relay_takes_the_sender_and_gets_no_mail(smtp_sink: SmtpSink) -> None:
    before = len(smtp_sink.received)
    finding = await _check(smtp_host="127.0.0.1", smtp_port=smtp_sink.port, smtp_tls="none")
    assert (finding.check, finding.status) == ("email.smtp", Status.OK)
    assert finding.why == (
        f"the mail server 127.0.0.1:{smtp_sink.port} took a connection without TLS and accepts"
        " mail from noreply@family.example: confirmation and password-reset mails can go out."
    )
    await asyncio.sleep(0.1)
    assert len(smtp_sink.received) == before


async def test_starttls_and_login(submission: SmtpSink, certificate: tuple[Path, ssl.SSLContext]) -> None:
    finding = await _check(
        smtp_host="localhost", smtp_port=submission.port, smtp_tls="starttls", smtp_user="matrix",
        smtp_password="app-password", from_address="Family <matrix@example.org>",
        ca_file=certificate[0],
    )
    assert (finding.check, finding.status) == ("email.smtp", Status.OK)
    assert "with STARTTLS, logged in as matrix and accepts mail from matrix@example.org" in finding.why
    assert submission.received == []


async def test_wrong_password(submission: SmtpSink, certificate: tuple[Path, ssl.SSLContext]) -> None:
    finding = await _check(
        smtp_host="localhost", smtp_port=submission.port, smtp_tls="starttls", smtp_user="matrix",
        smtp_password="account-password", ca_file=certificate[0],
    )
    assert (finding.check, finding.status) == ("email.smtp_login", Status.FAIL)
    assert finding.why.startswith(f"the mail server localhost:{submission.port} refused the login of matrix: 535")
    assert finding.fix is not None and "app password" in finding.fix


async def test_sender_the_account_may_not_use(
    submission: SmtpSink, certificate: tuple[Path, ssl.SSLContext]
) -> None:
    finding = await _check(
        smtp_host="localhost", smtp_port=submission.port, smtp_tls="starttls", smtp_user="matrix",
        smtp_password="app-password", ca_file=certificate[0],
    )
    assert (finding.check, finding.status) == ("email.smtp_sender", Status.FAIL)
    assert finding.why == (
        f"the mail server localhost:{submission.port} refuses mail from noreply@family.example:"
        " 553 5.7.1 Sender address rejected: not owned by user."
    )
    assert finding.fix is not None and "from_address" in finding.fix


async def test_untrusted_certificate(submission: SmtpSink) -> None:
    finding = await _check(
        smtp_host="localhost", smtp_port=submission.port, smtp_tls="starttls", smtp_user="matrix",
        smtp_password="app-password",
    )
    assert (finding.check, finding.status) == ("email.smtp_tls", Status.FAIL)
    assert "its TLS certificate is not trusted" in finding.why
    assert finding.fix is not None and "ca_file" in finding.fix


async def test_implicit_tls_against_a_starttls_port(submission: SmtpSink) -> None:
    finding = await _check(smtp_host="localhost", smtp_port=submission.port, smtp_tls="tls")
    assert (finding.check, finding.status) == ("email.smtp_tls", Status.FAIL)
    assert finding.fix is not None and '"starttls" for 587' in finding.fix


async def test_starttls_the_relay_does_not_offer(smtp_sink: SmtpSink) -> None:
    finding = await _check(smtp_host="127.0.0.1", smtp_port=smtp_sink.port, smtp_tls="starttls")
    assert (finding.check, finding.status) == ("email.smtp_tls", Status.FAIL)
    assert "STARTTLS" in finding.why


async def test_nothing_listening() -> None:
    port = free_port()
    finding = await _check(smtp_host="127.0.0.1", smtp_port=port, smtp_tls="none")
    assert (finding.check, finding.status) == ("email.smtp_reachable", Status.FAIL)
    assert finding.why.startswith(f"the mail server 127.0.0.1:{port} cannot be reached: ")
    assert finding.fix is not None and "port 25" in finding.fix
