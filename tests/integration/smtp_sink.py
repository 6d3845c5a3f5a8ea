"""A real SMTP server on loopback (aiosmtpd) that keeps every message it is sent, for the tests
of outgoing email. One per test session (the `smtp_sink` fixture, registered in
tests/conftest.py); tests tell their messages apart by recipient, so each uses its own address.

    srv = await start_server(sink.config())
    ...
    message = await sink.next_to("alice@example.org")
    link = first_link(message)

`refuse` holds addresses the server refuses at RCPT TO (550), as a mail server does an address
it knows to be wrong.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from dendrite_lite.tls.certs import self_signed

__all__ = ["Received", "SmtpSink", "first_link", "smtp_sink", "smtp_tls", "start_sink"]


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


@dataclass
class SmtpSink:
    host: str = "127.0.0.1"
    port: int = 0
    received: list[Received] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    def config(self, **more: Any) -> dict[str, Any]:
        """Server config overrides that send mail here (plain SMTP, no login)."""
        return {
            "email.smtp_host": self.host, "email.smtp_port": self.port, "email.smtp_tls": "none",
            **more,
        }

    def to(self, address: str) -> list[Received]:
        """The messages to `address` (any case: the server sends to the lower-cased address)."""
        address = address.lower()
        return [r for r in self.received if address in (a.lower() for a in r.rcpt_tos)]

    async def next_to(self, address: str, *, seen: int = 0, timeout: float = 10) -> Received:
        """The message to `address` after the first `seen` ones (waits for it)."""
        async with self._arrived:
            await asyncio.wait_for(
                self._arrived.wait_for(lambda: len(self.to(address)) > seen), timeout
            )
        return self.to(address)[seen]

    # aiosmtpd handler hooks
    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        async with self._arrived:
            self.received.append(
                Received(str(envelope.mail_from), list(envelope.rcpt_tos), message)
            )
            self._arrived.notify_all()
        return "250 Message accepted for delivery"


def first_link(received: Received) -> str:
    """What SyTest takes from a confirmation email: the first http... in its text/plain part."""
    part = received.message.get_body(preferencelist=("plain",))
    assert part is not None, "no text/plain part"
    text = part.get_content()
    match = re.search(r"http\S*", text)
    assert match, f"no link in {text!r}"
    return match[0]


def smtp_tls(directory: Path) -> tuple[Path, ssl.SSLContext]:
    """A self-signed certificate for "localhost" written to `directory`: (the certificate file a
    client trusts through email.ca_file, the server context a TLS or STARTTLS sink uses)."""
    cert, key = self_signed(["localhost"])
    (directory / "cert.pem").write_bytes(cert)
    (directory / "key.pem").write_bytes(key)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(directory / "cert.pem", directory / "key.pem")
    return directory / "cert.pem", context


async def start_sink(sink: SmtpSink, **smtp_options: Any) -> asyncio.AbstractServer:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(sink, hostname="sink.test", **smtp_options), sink.host, sink.port
    )
    sink.port = server.sockets[0].getsockname()[1]
    return server


@pytest.fixture(scope="session")
async def smtp_sink() -> AsyncIterator[SmtpSink]:
    sink = SmtpSink()
    server = await start_sink(sink)
    yield sink
    server.close()
    await server.wait_closed()
