"""User-Interactive Authentication (spec: client-server-api §User-Interactive Authentication API).

An endpoint protected by UIA offers flows (lists of stages). The first request gets a 401 with
the flows and a session id; the client then completes stages in the order of one flow, one
request per stage, quoting the session. When every stage of a flow is done the request goes
through. Stages here: m.login.dummy, m.login.password, m.login.registration_token,
m.login.recaptcha (which a browser may also complete on its fallback page, out of band),
m.login.email.identity (an address this server validated, users/threepids.py) and
m.login.sso (only out of band: the fallback page sends the browser to the CAS server, whose
callback records who signed in there; the request then goes through only for that user).

Sessions live in memory: they are short-lived, worthless after a restart (the client just starts
over) and this server is one process. Each session is bound to one operation (e.g. "register",
or "change password of @alice:example.org") so a stage completed for one request cannot
authorise another. The request body of the first request is kept, and later requests of the
session may leave out what they already sent (as Synapse allows; some clients rely on it).

Use: `session, params = uia.start(auth, operation, flows, body)`, validate `params`, then
`await uia.complete(session, auth, ...)` (raises the 401 until a flow is done), do the operation,
then `uia.finish(session)`.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.request_body import optional_field
from dendrite_lite.storage import Storage
from dendrite_lite.storage import registration as registration_table
from dendrite_lite.storage.threepids import ValidationSession
from dendrite_lite.users import threepids
from dendrite_lite.users.accounts import check_password, get_account
from dendrite_lite.users.recaptcha import CaptchaUnavailable, Recaptcha
from dendrite_lite.users.sessions import now_ms, resolve_identifier

__all__ = [
    "DUMMY",
    "EMAIL_IDENTITY",
    "PASSWORD",
    "RECAPTCHA",
    "REGISTRATION_TOKEN",
    "RESET_PASSWORD_BY_EMAIL",
    "SSO",
    "Flow",
    "UiaRequired",
    "UiaSession",
    "UiaSessions",
]

DUMMY = "m.login.dummy"
PASSWORD = "m.login.password"
REGISTRATION_TOKEN = "m.login.registration_token"
RECAPTCHA = "m.login.recaptcha"
EMAIL_IDENTITY = "m.login.email.identity"
SSO = "m.login.sso"

# The operation of POST /account/password without an access token, proven by email.
RESET_PASSWORD_BY_EMAIL = "reset password by email"
# Which /requestToken endpoint must have started the session an email stage quotes.
_EMAIL_PURPOSE = {
    "register": threepids.PURPOSE_REGISTER,
    RESET_PASSWORD_BY_EMAIL: threepids.PURPOSE_PASSWORD,
}

Flow = tuple[str, ...]

# Long enough to type a password or fetch a registration token from a message.
SESSION_TTL_S = 30 * 60
# Sessions cost memory and anyone may start one (registration): keep at most this many.
MAX_SESSIONS = 10_000


@dataclass(slots=True)
class UiaSession:
    session_id: str
    operation: str
    flows: tuple[Flow, ...]
    params: dict[str, Any]
    created: float
    clientdict: dict[str, Any] = field(default_factory=dict)
    completed: list[str] = field(default_factory=list)
    # The m.login.registration_token stage's token, for the registration to count its use.
    registration_token: str | None = None
    # Set once a registration went through: a retry quoting the session (a client that lost the
    # answer) logs that user in again instead of failing (Synapse's idempotent /register).
    registered_user_id: str | None = None
    # The m.login.email.identity stage's validated address, for the operation to act on.
    threepid: ValidationSession | None = None
    # Whose sensitive operation this session authorises (None for registration), and who
    # signed in at the m.login.sso stage.
    user_id: str | None = None
    sso_user_id: str | None = None

    def done(self) -> bool:
        return any(list(flow) == self.completed[: len(flow)] for flow in self.flows)

    def next_stages(self) -> set[str]:
        """The stages the client may do now: the next one of every flow it is still on."""
        n = len(self.completed)
        return {f[n] for f in self.flows if len(f) > n and list(f[:n]) == self.completed}


class UiaRequired(MatrixError):
    """401 with the UIA state (flows, params, session, completed) and, after a failed stage
    attempt, the errcode/error saying why. Rendered by the one MatrixError handler; the first
    401 of a session has no errcode, because clients show any errcode they see to the user."""

    def __init__(self, session: UiaSession, error: MatrixError | None = None) -> None:
        super().__init__(
            error.errcode if error else Errcode.UNAUTHORIZED,
            error.error if error else "Additional authentication required",
            status=401,
        )
        self.session = session
        self.has_error = error is not None

    def to_json(self) -> dict[str, Any]:
        s = self.session
        body: dict[str, Any] = {"errcode": self.errcode, "error": self.error} if self.has_error else {}
        body["flows"] = [{"stages": list(flow)} for flow in s.flows]
        body["params"] = s.params
        body["session"] = s.session_id
        # After an attempt the spec's body lists the stages done so far, even none
        # (client-server-api §User-interactive authentication API); the first 401 has no key.
        if s.completed or self.has_error:
            body["completed"] = list(s.completed)
        return body


class UiaSessions:
    """The server's UIA sessions (one instance, in Services)."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        ttl_s: float = SESSION_TTL_S,
        max_sessions: int = MAX_SESSIONS,
        recaptcha: Recaptcha | None = None,
    ) -> None:
        self._clock = clock
        self._recaptcha = recaptcha
        self._ttl = ttl_s
        self._max = max_sessions
        self._sessions: OrderedDict[str, UiaSession] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def start(
        self,
        auth: object,
        operation: str,
        flows: Sequence[Flow],
        clientdict: dict[str, Any],
        params: dict[str, Any] | None = None,
    ) -> tuple[UiaSession, dict[str, Any]]:
        """The request's session (new when it quotes none) and its parameters: the body merged
        over what the session's earlier requests sent. Raises 400 for an unknown session id and
        403 when the session belongs to another operation."""
        if auth is not None and not isinstance(auth, dict):
            raise MatrixError(Errcode.BAD_JSON, "'auth' must be an object")
        # Checked here, before any use: complete() looks the stage up in a set, where a list
        # or an object is unhashable (a 500 instead of a 400).
        session_id = None
        if auth is not None:
            optional_field(auth, "type", "string", name="auth.type")
            session_id = optional_field(auth, "session", "string", name="auth.session")
        self._expire()
        if session_id is None:
            session = self._new(operation, flows, params or {})
        else:
            found = self._sessions.get(session_id)
            if found is None:
                raise MatrixError(Errcode.UNKNOWN, "Unknown UIA session id", status=400)
            if found.operation != operation:
                raise MatrixError(
                    Errcode.FORBIDDEN,
                    "Requested operation has changed during the UI authentication session",
                )
            session = found
        body = {k: v for k, v in clientdict.items() if k != "auth"}
        if body:
            session.clientdict = {**session.clientdict, **body}
        return session, dict(session.clientdict)

    async def complete(
        self,
        session: UiaSession,
        auth: dict[str, Any] | None,
        *,
        storage: Storage,
        server_name: str,
        user_id: str | None = None,
        ip: str | None = None,
    ) -> None:
        """Do the stage `auth` submits; return once a flow is complete, else raise UiaRequired.

        `user_id` is who m.login.password must prove to be (the requester); `ip` is the
        client's address, which the captcha service weighs.
        """
        stage = auth.get("type") if auth is not None else None
        if stage is not None and stage not in session.completed:
            if stage not in session.next_stages():
                raise UiaRequired(
                    session,
                    MatrixError(Errcode.FORBIDDEN, f"Authentication stage {stage!r} not expected now"),
                )
            assert auth is not None
            await self._check_stage(session, stage, auth, storage, server_name, user_id, ip)
            # A concurrent request of the session may have done it during the await.
            if stage not in session.completed:
                session.completed.append(stage)
        if SSO in session.completed and user_id is not None and session.sso_user_id != user_id:
            # Signed in at the SSO server as somebody else (the request's session id was
            # handed to another browser, or the user picked another account): not retryable.
            raise MatrixError(
                Errcode.FORBIDDEN,
                f"Single sign-on was completed as {session.sso_user_id}, not {user_id}",
            )
        if not session.done():
            raise UiaRequired(session)

    async def verify_password_of(
        self,
        storage: Storage,
        body: dict[str, Any],
        *,
        server_name: str,
        user_id: str,
        operation: str,
        sso: bool = False,
    ) -> tuple[UiaSession, dict[str, Any]]:
        """UIA for an authenticated user's sensitive request (change password, deactivate,
        delete devices): [m.login.password], which must prove to be user_id, and with single
        sign-on configured (`sso`) [m.login.sso] beside it, or alone for an account without a
        password. Returns the session (to `finish` once done) and the merged request
        parameters."""
        auth = body.get("auth")
        flows: list[Flow] = [(PASSWORD,)]
        if sso:
            account = await get_account(storage, user_id)
            has_password = account is not None and account.password_hash is not None
            flows = [(PASSWORD,), (SSO,)] if has_password else [(SSO,)]
        session, params = self.start(auth, f"{operation} by {user_id}", flows, body)
        session.user_id = user_id
        await self.complete(
            session, auth, storage=storage, server_name=server_name, user_id=user_id
        )
        return session, params

    async def prove_email(
        self, storage: Storage, body: dict[str, Any], *, server_name: str
    ) -> tuple[UiaSession, dict[str, Any]]:
        """UIA for a forgotten-password reset (no access token): one flow,
        [m.login.email.identity], with a session of /account/password/email/requestToken.
        Returns the session, whose `threepid` is the proven address, and the merged request
        parameters."""
        auth = body.get("auth")
        session, params = self.start(auth, RESET_PASSWORD_BY_EMAIL, [(EMAIL_IDENTITY,)], body)
        await self.complete(session, auth, storage=storage, server_name=server_name)
        return session, params

    def known(self, session_id: str) -> bool:
        self._expire()
        return session_id in self._sessions

    async def complete_recaptcha_fallback(
        self, session_id: str, response: str, *, ip: str | None
    ) -> None:
        """The m.login.recaptcha stage done on its fallback page (client-server-api §Fallback):
        recorded in the session, which the client then resubmits with just its id. Raises
        UiaRequired when the captcha is refused, MatrixError for an unknown session or when
        the session is not at that stage."""
        self._expire()
        session = self._sessions.get(session_id)
        if session is None:
            raise MatrixError(Errcode.UNKNOWN, "Unknown UIA session id", status=400)
        if RECAPTCHA in session.completed:
            return
        if RECAPTCHA not in session.next_stages():
            raise MatrixError(Errcode.FORBIDDEN, "This session does not expect a captcha now")
        await self._check_recaptcha(session, {"response": response}, ip)
        if RECAPTCHA not in session.completed:
            session.completed.append(RECAPTCHA)

    def sso_session(self, session_id: str) -> UiaSession:
        """The session whose m.login.sso stage a browser is about to do (its fallback page, the
        CAS callback): 400 for an unknown session, 403 for one that does not expect SSO."""
        self._expire()
        session = self._sessions.get(session_id)
        if session is None:
            raise MatrixError(Errcode.UNKNOWN, "Unknown UIA session id", status=400)
        if session.user_id is None or (
            SSO not in session.completed and SSO not in session.next_stages()
        ):
            raise MatrixError(Errcode.FORBIDDEN, "This session does not expect single sign-on")
        return session

    def complete_sso(self, session_id: str, user_id: str) -> UiaSession:
        """The m.login.sso stage done in a browser as `user_id` (whoever the SSO server says):
        recorded for the client's resubmission, which goes through only if that is the user
        the session is for. A completion by the right user is not undone by a later one."""
        session = self.sso_session(session_id)
        if session.sso_user_id != session.user_id:
            session.sso_user_id = user_id
        if SSO not in session.completed:
            session.completed.append(SSO)
        return session

    async def aclose(self) -> None:
        if self._recaptcha is not None:
            await self._recaptcha.aclose()

    def finish(self, session: UiaSession) -> None:
        """The operation went through: the session may not authorise anything else."""
        self._sessions.pop(session.session_id, None)

    # -- internals ------------------------------------------------------------------------

    def _new(self, operation: str, flows: Sequence[Flow], params: dict[str, Any]) -> UiaSession:
        session = UiaSession(
            secrets.token_urlsafe(18), operation, tuple(tuple(f) for f in flows), params,
            self._clock(),
        )
        self._sessions[session.session_id] = session
        while len(self._sessions) > self._max:
            self._sessions.popitem(last=False)
        return session

    def _expire(self) -> None:
        now = self._clock()
        while self._sessions:
            oldest = next(iter(self._sessions.values()))
            if now - oldest.created < self._ttl:
                break
            self._sessions.popitem(last=False)

    async def _check_stage(
        self,
        session: UiaSession,
        stage: str,
        auth: dict[str, Any],
        storage: Storage,
        server_name: str,
        user_id: str | None,
        ip: str | None,
    ) -> None:
        if stage == DUMMY:
            return
        if stage == PASSWORD:
            await _check_password_stage(session, auth, storage, server_name, user_id)
        elif stage == REGISTRATION_TOKEN:
            await _check_registration_token_stage(session, auth, storage)
        elif stage == RECAPTCHA:
            await self._check_recaptcha(session, auth, ip)
        elif stage == EMAIL_IDENTITY:
            await _check_email_stage(session, auth, storage)
        elif stage == SSO:  # done on the fallback page, never in the request itself
            raise UiaRequired(session, MatrixError(
                Errcode.UNAUTHORIZED,
                "Sign in again on the m.login.sso fallback page, then resubmit with the session",
            ))
        else:  # offered in a flow but not implemented: a programming error
            raise RuntimeError(f"UIA stage {stage} has no checker")

    async def _check_recaptcha(
        self, session: UiaSession, auth: dict[str, Any], ip: str | None
    ) -> None:
        if self._recaptcha is None:  # offered without registration.recaptcha_* keys
            raise RuntimeError("m.login.recaptcha offered without a reCAPTCHA configured")
        response = auth.get("response")
        if not isinstance(response, str) or not response:
            raise UiaRequired(
                session, MatrixError(Errcode.CAPTCHA_NEEDED, "Captcha response is required")
            )
        try:
            accepted = await self._recaptcha.verify(response, ip)
        except CaptchaUnavailable:
            # Not the user's failure: the stage stays open and the session usable for a retry.
            raise MatrixError(
                Errcode.UNKNOWN, "The captcha service could not be reached; try again later",
                status=502,
            ) from None
        if not accepted:
            raise UiaRequired(
                session, MatrixError(Errcode.UNAUTHORIZED, "Captcha authentication failed")
            )


async def _check_password_stage(
    session: UiaSession,
    auth: dict[str, Any],
    storage: Storage,
    server_name: str,
    user_id: str | None,
) -> None:
    try:
        claimed = await resolve_identifier(storage, auth, server_name)
    except MatrixError as e:
        raise UiaRequired(session, e) from None
    if claimed is None:  # a third-party id nobody has: as a wrong password
        raise UiaRequired(session, MatrixError(Errcode.FORBIDDEN, "Invalid password"))
    if user_id is not None and claimed != user_id:
        # Authenticating as somebody else is not a retryable stage failure.
        raise MatrixError(Errcode.FORBIDDEN, "Authenticated user does not match the requester")
    password = auth.get("password")
    if not isinstance(password, str) or not await check_password(storage, claimed, password):
        raise UiaRequired(session, MatrixError(Errcode.FORBIDDEN, "Invalid password"))


async def _check_email_stage(
    session: UiaSession, auth: dict[str, Any], storage: Storage
) -> None:
    purpose = _EMAIL_PURPOSE.get(session.operation)
    if purpose is None:  # offered for an operation it cannot prove: a programming error
        raise RuntimeError(f"{EMAIL_IDENTITY} offered for {session.operation!r}")
    try:
        session.threepid = await threepids.validated_session(
            storage, auth.get("threepid_creds"), purpose
        )
    except threepids.NotValidated:
        # Synapse's answer: 401 M_UNAUTHORIZED, the session kept for when the link is followed.
        raise UiaRequired(
            session,
            MatrixError(
                Errcode.UNAUTHORIZED,
                "Email address not validated: follow the link in the email first",
            ),
        ) from None


async def _check_registration_token_stage(
    session: UiaSession, auth: dict[str, Any], storage: Storage
) -> None:
    token = auth.get("token")
    found = None
    if isinstance(token, str):
        found = await storage.db.read(
            lambda conn: registration_table.select_registration_token(conn, token)
        )
    if found is None or not found.is_valid(now_ms()):
        raise UiaRequired(session, MatrixError(Errcode.UNAUTHORIZED, "Invalid registration token"))
    session.registration_token = found.token
