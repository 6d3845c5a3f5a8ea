"""One certificate order with the `acme` library: account, order, challenges, CSR, full chain.

Synchronous (acme uses requests): callers run `issue` in a worker thread (`asyncio.to_thread`)
so the event loop keeps serving while the CA validates. The challenge answers it puts are read
by the listeners on the loop: Http01Answers (the port-80 app) and TlsAlpnAnswers (the TLS
context's SNI callback); both are removed when the order ends, however it ends.

Every failure becomes one IssueError whose `reason` is one line a person can act on (what the
CA said, or why the CA could not be reached), plus the CA's Retry-After when it gave one.
"""

from __future__ import annotations

import datetime
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import josepy as jose
import requests
from acme import client as acme_client
from acme import crypto_util, messages
from acme import errors as acme_errors

from dendrite_lite.config import Config
from dendrite_lite.tls import account
from dendrite_lite.tls.alpn import TlsAlpnAnswers
from dendrite_lite.tls.certs import key_pem, new_key
from dendrite_lite.tls.http01 import Http01Answers
from dendrite_lite.tls.renewal import parse_retry_after

__all__ = ["ORDER_TIMEOUT_S", "IssueError", "Issued", "challenge_type", "issue", "new_client"]

# How long the CA gets to validate and issue before the attempt counts as failed.
ORDER_TIMEOUT_S = 90
USER_AGENT = "dendrite-lite"


@dataclass(frozen=True, slots=True)
class Issued:
    fullchain_pem: bytes
    key_pem: bytes
    challenge: str


class IssueError(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after  # Unix time the CA asked us to wait until, if it did


def challenge_type(config: Config) -> str:
    """tls.acme_challenge resolved: "auto" is HTTP-01 when the port-80 listener exists."""
    chosen = config.tls.acme_challenge
    if chosen == "auto":
        return "http-01" if config.listen.acme_http else "tls-alpn-01"
    return chosen


class _Network(acme_client.ClientNetwork):
    """acme's network layer, remembering the last response: its Retry-After is how a CA says
    when to come back after a rate limit, and acme's errors do not carry headers."""

    last_response: requests.Response | None = None

    def _send_request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        response = super()._send_request(method, url, *args, **kwargs)
        self.last_response = response
        return response


def new_client(config: Config) -> acme_client.ClientV2:
    """A client for config's directory, signing with the account key (no registration yet)."""
    key = account.load_account_key(config.acme_dir)
    ca_file = config.tls.acme_ca_file
    net = _Network(key, alg=jose.ES256, verify_ssl=str(ca_file) if ca_file else True,
                   user_agent=USER_AGENT, timeout=30)
    return acme_client.ClientV2(acme_client.ClientV2.get_directory(config.tls.acme_directory, net), net)


def issue(
    config: Config,
    http01: Http01Answers | None,
    alpn: TlsAlpnAnswers | None,
    *,
    timeout_s: float = ORDER_TIMEOUT_S,
) -> Issued:
    """A new certificate for config.acme_names by config's challenge type; IssueError when not."""
    names = config.acme_names
    chosen = challenge_type(config)
    client: acme_client.ClientV2 | None = None
    try:
        client = new_client(config)
        account.ensure_account(client, config)
        try:
            return _order(client, names, chosen, http01, alpn, timeout_s)
        except messages.Error as e:
            if e.code != "accountDoesNotExist":
                raise
            # The CA forgot the account (a test CA restarted, or it was deactivated): once more
            # with a new registration of the same key.
            account.forget_registration(config.acme_dir)
            account.ensure_account(client, config)
            return _order(client, names, chosen, http01, alpn, timeout_s)
    except Exception as e:
        last = client.net.last_response if client is not None else None  # type: ignore[attr-defined]
        raise IssueError(describe_failure(e, config), _retry_after(last)) from e


def _order(
    client: acme_client.ClientV2,
    names: tuple[str, ...],
    chosen: str,
    http01: Http01Answers | None,
    alpn: TlsAlpnAnswers | None,
    timeout_s: float,
) -> Issued:
    cert_key = key_pem(new_key())
    order = client.new_order(crypto_util.make_csr(cert_key, list(names)))
    cleanups: list[Callable[[], None]] = []
    try:
        for authz in order.authorizations:
            if authz.body.status == messages.STATUS_VALID:
                continue  # validated recently for this account: nothing to answer
            challb = _find_challenge(authz, chosen)
            response, validation = challb.chall.response_and_validation(client.net.key)
            name = authz.body.identifier.value
            if chosen == "http-01":
                assert http01 is not None, "http-01 needs the port-80 answers"
                token = challb.chall.encode("token")
                http01.put(token, validation)
                cleanups.append(lambda t=token: http01.remove(t))
            else:
                assert alpn is not None, "tls-alpn-01 needs a TLS listener's answers"
                alpn.put(name, validation)
                cleanups.append(lambda n=name: alpn.remove(n))
            client.answer_challenge(challb, response)
        deadline = datetime.datetime.now() + datetime.timedelta(seconds=timeout_s)
        order = client.poll_and_finalize(order, deadline)
    finally:
        for cleanup in cleanups:
            cleanup()
    assert order.fullchain_pem is not None
    return Issued(order.fullchain_pem.encode(), cert_key, chosen)


def _find_challenge(
    authz: messages.AuthorizationResource, chosen: str
) -> messages.ChallengeBody:
    for challb in authz.body.challenges:
        if challb.chall.typ == chosen:
            return challb
    offered = ", ".join(sorted(str(c.chall.typ) for c in authz.body.challenges)) or "none"
    raise IssueError(
        f"the CA offers no {chosen} challenge for {authz.body.identifier.value} (it offers: "
        f"{offered}); set tls.acme_challenge to one of those"
    )


def describe_failure(e: BaseException, config: Config) -> str:
    """One line saying why an attempt failed, for the log and state.json's last_error."""
    directory = config.tls.acme_directory
    if isinstance(e, IssueError):
        return e.reason
    if isinstance(e, acme_errors.ValidationError):
        return "; ".join(_validation_failure(a) for a in e.failed_authzrs)
    if isinstance(e, acme_errors.IssuanceError):
        return f"the CA refused to issue: {_problem(e.error)}"
    if isinstance(e, messages.Error):
        if e.code == "rateLimited":
            return f"the CA's rate limit was hit: {_problem(e)}"
        return f"the CA answered: {_problem(e)}"
    if isinstance(e, acme_errors.TimeoutError):
        return "the CA did not finish validating and issuing in time"
    if isinstance(e, requests.exceptions.SSLError):
        return (f"cannot verify the TLS certificate of the ACME directory {directory} "
                f"(tls.acme_ca_file names a CA to trust for it): {_errno_text(e)}")
    if isinstance(e, requests.exceptions.RequestException):
        return f"cannot reach the ACME directory {directory}: {_errno_text(e)}"
    if isinstance(e, acme_errors.ClientError):
        return f"the ACME directory {directory} answered something that is not ACME: {e}"
    return f"unexpected error: {e!r}"


def _validation_failure(authzr: messages.AuthorizationResource) -> str:
    name = authzr.body.identifier.value
    for challb in authzr.body.challenges:
        if challb.error is not None:
            return f"the CA could not validate {name} by {challb.chall.typ}: {_problem(challb.error)}"
    return f"the CA did not validate {name}"


def _problem(error: messages.Error) -> str:
    text = error.detail or error.title or error.description or str(error.typ)
    return " ".join(str(text).split())  # one line


def _errno_text(e: BaseException) -> str:
    # requests' messages nest urllib3's ("...Max retries exceeded... (Caused by
    # NewConnectionError(...: [Errno 111] Connection refused'))"): the errno text is the news.
    text = str(e)
    found = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    return found.group(1).strip() if found else " ".join(text.split())


def _retry_after(response: requests.Response | None) -> float | None:
    """The Unix time a 429/503's Retry-After points at."""
    if response is None or response.status_code not in (429, 503):
        return None
    return parse_retry_after(response.headers.get("Retry-After", ""), time.time())
