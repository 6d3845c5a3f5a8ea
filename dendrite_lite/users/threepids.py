"""Email addresses the homeserver validates itself (client-server-api §Adding Account
Administrative Contact Information, the /requestToken endpoints, the m.login.email.identity
UIA stage).

A client asks /requestToken to mail a link to an address; following the link (GET
SUBMIT_TOKEN_PATH) marks the session validated; the client then quotes {sid, client_secret}:
to sign up (UIA m.login.email.identity), to add the address to its account (/account/3pid/add),
or to reset a forgotten password (UIA at /account/password without an access token).

Rules that keep it safe:
- A session belongs to the endpoint that started it (`purpose`): each mails its own words, and a
  link the owner followed to confirm a sign-up cannot then reset their password.
- The same request again (same address, client_secret and a send_attempt not above the last)
  answers the same sid and mails nothing (request_email_validation.yaml); a higher send_attempt
  mails a new link, and the old one stops working.
- A session is used once: registration, adding and resetting delete it in the transaction that
  acts on it. Sessions expire SESSION_LIFETIME_MS after they start, validated or not.
- The token is random (256 bits) and stored as its SHA-256 only.
"""

from __future__ import annotations

import hmac
import re
import secrets
import urllib.parse
from dataclasses import dataclass
from typing import Any

import aiosqlite

from dendrite_lite.config import Config
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.storage import Storage
from dendrite_lite.storage import threepids as threepids_table
from dendrite_lite.storage.devices import hash_token
from dendrite_lite.storage.threepids import UserThreepid, ValidationSession
from dendrite_lite.users.accounts import get_account
from dendrite_lite.users.email_sender import EmailRefused, EmailSender, EmailUnavailable
from dendrite_lite.users.sessions import now_ms

__all__ = [
    "EMAIL",
    "PURPOSE_ADD",
    "PURPOSE_PASSWORD",
    "PURPOSE_REGISTER",
    "SESSION_LIFETIME_MS",
    "SUBMIT_TOKEN_PATH",
    "EmailRequest",
    "EmailValidation",
    "NotValidated",
    "add_to_account",
    "add_validated_threepid",
    "canonical_address",
    "normalise_email",
    "parse_email_request",
    "user_id_for_threepid",
    "user_threepids",
    "validate_client_secret",
    "validated_session",
]

EMAIL = "email"
PURPOSE_REGISTER = "register"  # POST /register/email/requestToken
PURPOSE_ADD = "add"  # POST /account/3pid/email/requestToken
PURPOSE_PASSWORD = "password"  # POST /account/password/email/requestToken

SESSION_LIFETIME_MS = 24 * 3600 * 1000
# The link mailed to the user; not under /_matrix (no spec path exists for it).
SUBMIT_TOKEN_PATH = "/_dendrite_lite/client/email/submit_token"

_CLIENT_SECRET_RE = re.compile(r"[0-9a-zA-Z.=_-]{1,255}")
# One @, something on both sides, and nothing that breaks an SMTP envelope or a header.
_EMAIL_RE = re.compile(r"[^@\s<>(),;:\"\[\]\\]+@[^@\s<>(),;:\"\[\]\\.][^@\s<>(),;:\"\[\]\\]*")
MAX_EMAIL_LENGTH = 254  # RFC 5321's limit on a forward path
MAX_NEXT_LINK_LENGTH = 2048


class NotValidated(Exception):
    """threepid_creds name no validated session of the expected purpose (unknown, expired,
    wrong secret, link not followed yet, or started by another endpoint)."""


@dataclass(frozen=True, slots=True)
class EmailRequest:
    """The body of an email /requestToken (request_email_validation.yaml); `id_server` and
    `id_access_token` are ignored, as the spec allows when the homeserver validates itself."""

    client_secret: str
    email: str  # normalised
    send_attempt: int
    next_link: str | None


def validate_client_secret(value: object) -> str:
    """The spec's grammar: [0-9a-zA-Z.=_-], 1 to 255 characters."""
    if not isinstance(value, str):
        raise MatrixError(Errcode.MISSING_PARAM, "client_secret must be a string")
    if not _CLIENT_SECRET_RE.fullmatch(value):
        raise MatrixError(
            Errcode.INVALID_PARAM,
            "client_secret must be 1-255 characters of [0-9a-zA-Z.=_-]",
        )
    return value


def canonical_address(medium: str, address: str) -> str:
    """An address as stored, for looking one up (login): emails compare lower-cased."""
    return address.strip().lower() if medium == EMAIL else address.strip()


def normalise_email(value: object) -> str:
    """The address as stored and compared: trimmed and lower-cased (as Synapse keeps them, so
    Alice@Example.org and alice@example.org are one address). 400 M_INVALID_PARAM if it is
    not an address."""
    if not isinstance(value, str):
        raise MatrixError(Errcode.INVALID_PARAM, "email must be a string")
    address = canonical_address(EMAIL, value)
    if (
        len(address) > MAX_EMAIL_LENGTH
        or not _EMAIL_RE.fullmatch(address)
        or address.endswith(".")
        or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in address)
    ):
        raise MatrixError(Errcode.INVALID_PARAM, "Invalid email address")
    return address


def parse_email_request(body: dict[str, Any]) -> EmailRequest:
    for key in ("client_secret", "email", "send_attempt"):
        if key not in body:
            raise MatrixError(Errcode.MISSING_PARAM, f"Missing params: {key}")
    client_secret = validate_client_secret(body["client_secret"])
    address = normalise_email(body["email"])
    send_attempt = body["send_attempt"]
    if isinstance(send_attempt, bool) or not isinstance(send_attempt, int):
        raise MatrixError(Errcode.INVALID_PARAM, "send_attempt must be an integer")
    next_link = body.get("next_link")
    if next_link is not None and (
        not isinstance(next_link, str) or len(next_link) > MAX_NEXT_LINK_LENGTH
    ):
        raise MatrixError(
            Errcode.INVALID_PARAM, f"next_link must be a URL of at most {MAX_NEXT_LINK_LENGTH} characters"
        )
    return EmailRequest(client_secret, address, send_attempt, next_link or None)


def redirect_target(next_link: str | None) -> str | None:
    """Where the confirmation page sends the browser: next_link if it is an http(s) URL, so a
    javascript: or data: link cannot run in this server's origin."""
    if not next_link:
        return None
    parts = urllib.parse.urlsplit(next_link)
    return next_link if parts.scheme in ("http", "https") and parts.netloc else None


# -- the messages -------------------------------------------------------------------------------

_SUBJECTS = {
    PURPOSE_REGISTER: "Confirm your email address for {server}",
    PURPOSE_ADD: "Confirm your email address for {server}",
    PURPOSE_PASSWORD: "Reset your password on {server}",
}
# The link comes first of anything that looks like a URL: SyTest (and people) take the first.
_TEXTS = {
    PURPOSE_REGISTER: (
        "Someone asked to create an account on the Matrix server {server} with this email "
        "address.\n\nIf it was you, open this link to confirm the address:\n\n{link}\n\n"
        "If it was not you, you can ignore this message: no account gets this address."
    ),
    PURPOSE_ADD: (
        "Someone asked to add this email address to their account on the Matrix server "
        "{server}.\n\nIf it was you, open this link to confirm the address:\n\n{link}\n\n"
        "If it was not you, you can ignore this message: the address is not added."
    ),
    PURPOSE_PASSWORD: (
        "Someone asked to reset the password of your account on the Matrix server {server}."
        "\n\nIf it was you, open this link, then go back to your app to choose the new "
        "password:\n\n{link}\n\nIf it was not you, you can ignore this message: your password "
        "stays as it is."
    ),
}


class EmailValidation:
    """The /requestToken endpoints and the confirmation link (one per server, in Services).
    Without an SMTP server (`sender` None) every email request is 400
    M_THREEPID_MEDIUM_NOT_SUPPORTED."""

    def __init__(self, storage: Storage, config: Config, sender: EmailSender | None) -> None:
        self._storage = storage
        self._server_name = config.server.server_name
        self._base_url = config.public_baseurl
        self._sender = sender

    @property
    def enabled(self) -> bool:
        return self._sender is not None

    async def request_token(self, purpose: str, body: dict[str, Any]) -> str:
        """POST /.../email/requestToken: the session id, after mailing the link (or not, for a
        repeated request). 400 M_THREEPID_IN_USE when signing up with or adding an address an
        account has, M_THREEPID_NOT_FOUND when resetting with one nobody has; 502 when the mail
        server cannot take the message."""
        if self._sender is None:
            raise MatrixError(
                Errcode.THREEPID_MEDIUM_NOT_SUPPORTED, "This server does not send email"
            )
        req = parse_email_request(body)
        owner = await user_id_for_threepid(self._storage, EMAIL, req.email)
        if purpose == PURPOSE_PASSWORD:
            account = await get_account(self._storage, owner) if owner is not None else None
            if account is None or account.deactivated:
                raise MatrixError(Errcode.THREEPID_NOT_FOUND, "Email not found")
        elif owner is not None:
            raise MatrixError(Errcode.THREEPID_IN_USE, "Email is already in use")
        token = secrets.token_urlsafe(32)
        now = now_ms()

        async def txn(conn: aiosqlite.Connection) -> tuple[str, bool]:
            old = await threepids_table.select_validation_session_by_key(
                conn, EMAIL, req.email, req.client_secret, purpose, now
            )
            if old is not None and req.send_attempt <= old.send_attempt:
                return old.sid, False
            if old is not None:
                await threepids_table.update_validation_resent(
                    conn, old.sid, hash_token(token), req.send_attempt, req.next_link
                )
                return old.sid, True
            # (Inserting sweeps expired sessions first, one of the same key among them.)
            sid = secrets.token_urlsafe(18)
            await threepids_table.insert_validation_session(conn, ValidationSession(
                sid, req.client_secret, EMAIL, req.email, purpose, req.send_attempt,
                req.next_link, now, None, now + SESSION_LIFETIME_MS,
            ), hash_token(token))
            return sid, True

        sid, send = await self._storage.db.write(txn)
        if send:
            await self._mail(purpose, req.email, sid, req.client_secret, token)
        return sid

    async def _mail(self, purpose: str, to: str, sid: str, client_secret: str, token: str) -> None:
        assert self._sender is not None
        query = urllib.parse.urlencode({"sid": sid, "client_secret": client_secret, "token": token})
        link = f"{self._base_url.rstrip('/')}{SUBMIT_TOKEN_PATH}?{query}"
        server = self._server_name
        try:
            await self._sender.send(
                to, _SUBJECTS[purpose].format(server=server),
                _TEXTS[purpose].format(server=server, link=link),
            )
        except (EmailRefused, EmailUnavailable) as e:
            # No link went out: the session goes, so the same request can be tried again.
            await self._storage.db.write(
                lambda conn: threepids_table.delete_validation_session(conn, sid)
            )
            if isinstance(e, EmailRefused):
                raise MatrixError(
                    Errcode.INVALID_PARAM, "The mail server refused this email address"
                ) from None
            # The spec names no error for this. Synapse answers 500 M_UNKNOWN ("An error was
            # encountered when sending the email"); 502 says the fault is upstream, as for an
            # unreachable captcha service (uia.py), and the message says which.
            raise MatrixError(
                Errcode.UNKNOWN,
                "The email could not be sent: this server's mail server is not available; "
                "try again later",
                status=502,
            ) from None

    async def submit_token(self, sid: object, client_secret: object, token: object) -> str | None:
        """The confirmation link was followed: mark the session validated. Returns where to send
        the browser next (the session's http(s) next_link) or None; MatrixError when the link
        is malformed, expired, already replaced by a newer one, or not ours."""
        if not isinstance(sid, str) or not isinstance(token, str) or not sid or not token:
            raise MatrixError(Errcode.MISSING_PARAM, "The link is incomplete")
        secret = validate_client_secret(client_secret)
        now = now_ms()

        async def txn(conn: aiosqlite.Connection) -> str | None:
            session = await threepids_table.select_validation_session(conn, sid, secret, now)
            stored = await threepids_table.select_validation_token_hash(conn, sid)
            if session is None or stored is None or not hmac.compare_digest(
                stored.encode("ascii"), hash_token(token).encode("ascii")
            ):
                raise MatrixError(
                    Errcode.THREEPID_AUTH_FAILED,
                    "This link is not valid: it has expired, or a newer email replaced it",
                    status=400,
                )
            await threepids_table.update_validation_validated(conn, sid, now)
            return redirect_target(session.next_link)

        return await self._storage.db.write(txn)


# -- using a validated session --------------------------------------------------------------


async def validated_session(
    storage: Storage, creds: object, purpose: str, *, now: int | None = None
) -> ValidationSession:
    """The validated session `creds` ({sid, client_secret, ...}) name, started by the endpoint
    of `purpose`. 400 when creds are malformed; NotValidated when no such session is ready."""
    if not isinstance(creds, dict):
        raise MatrixError(Errcode.MISSING_PARAM, "Missing threepid_creds")
    sid, secret = creds.get("sid"), creds.get("client_secret")
    if not isinstance(sid, str) or secret is None:
        raise MatrixError(Errcode.MISSING_PARAM, "threepid_creds needs sid and client_secret")
    validate_client_secret(secret)
    at = now if now is not None else now_ms()
    session = await storage.db.read(
        lambda conn: threepids_table.select_validation_session(conn, sid, secret, at)
    )
    if session is None or session.validated_ts is None or session.purpose != purpose:
        raise NotValidated(sid)
    return session


async def add_validated_threepid(
    conn: aiosqlite.Connection, user_id: str, session: ValidationSession, now: int
) -> None:
    """Inside a write transaction: the validated address becomes the user's and the session is
    used up. 400 M_THREEPID_IN_USE when another account got the address meanwhile."""
    if not await threepids_table.insert_user_threepid(
        conn, user_id, session.medium, session.address,
        validated_at=session.validated_ts or now, added_at=now,
    ):
        raise MatrixError(Errcode.THREEPID_IN_USE, "Email is already in use")
    await threepids_table.delete_validation_session(conn, session.sid)


async def add_to_account(storage: Storage, user_id: str, creds: object) -> None:
    """POST /account/3pid/add (and the deprecated /account/3pid): the address of the validated
    session `creds` names (one started by /account/3pid/email/requestToken) becomes the user's.
    NotValidated when there is no such session."""
    session = await validated_session(storage, creds, PURPOSE_ADD)
    now = now_ms()
    await storage.db.write(lambda conn: add_validated_threepid(conn, user_id, session, now))


async def user_id_for_threepid(storage: Storage, medium: str, address: str) -> str | None:
    """The account an address (normalised) belongs to."""
    return await storage.db.read(
        lambda conn: threepids_table.select_user_id_for_threepid(conn, medium, address)
    )


async def user_threepids(storage: Storage, user_id: str) -> list[UserThreepid]:
    """GET /account/3pid."""
    return await storage.db.read(lambda conn: threepids_table.select_user_threepids(conn, user_id))
