"""A real signed federation request from the configured server to itself, through the address
peers use: what catches a reverse proxy that forwards the key and version endpoints (unsigned)
but breaks signed requests.

The request is `GET /_matrix/federation/v1/query/profile` for a user that does not exist,
signed with the server's own key by the federation client (origin = destination = our server
name). Nothing in the spec forbids origin == destination, and our keyring answers our own
key without a fetch, so our server accepts it; a Synapse does too. What the answer means:
- any Matrix JSON answer other than an auth error (404 M_NOT_FOUND is the usual): the request
  reached the homeserver and its signature was accepted: OK;
- 401/403 with M_UNAUTHORIZED/M_FORBIDDEN: the homeserver got the request but not the
  signature it was sent with: the proxy dropped the Authorization header or rewrote the URI;
- an answer that is not Matrix JSON (an HTML 404): /_matrix/federation never reached the
  homeserver.
Only for the configured server: the signing key is its own, read from its key file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from dendrite_lite.config import Config
from dendrite_lite.delegation.doctor.findings import Finding, Status
from dendrite_lite.federation.client import (
    FederationClient,
    RemoteError,
    UnreachableError,
)

__all__ = ["PROFILE_PATH", "self_request_findings"]

PROFILE_PATH = "/_matrix/federation/v1/query/profile"
CHECK = "federation.signed_request"
_AUTH_ERRCODES = frozenset({"M_UNAUTHORIZED", "M_FORBIDDEN"})


@dataclass(slots=True)
class _StatusTrace:
    """The statuses of the HTTP answers the client received: an UnreachableError after one
    means an answer came that was not JSON (or too big), not that nothing answered."""

    statuses: list[int] = field(default_factory=list)

    async def hook(self, response: httpx.Response) -> None:
        self.statuses.append(response.status_code)


def _upstream(config: Config) -> str:
    scheme = "https" if config.federation_tls else "http"
    return f"{scheme}://{config.listen.federation or config.listen.client}"


def proxy_fix(config: Config) -> str:
    """The reverse proxy lines that forward federation unchanged, for nginx and Caddy."""
    upstream = _upstream(config)
    return (
        "In the reverse proxy, forward all of /_matrix/ to dendrite-lite with the path and the"
        " Authorization header unchanged. nginx:\n"
        "  location /_matrix/ {\n"
        f"      proxy_pass {upstream};  # nothing after the port: a URI part here makes nginx"
        " decode and re-encode the path, which breaks the signature\n"
        "      proxy_set_header Host $host;\n"
        "  }\n"
        "(and no `proxy_set_header Authorization` line). Caddy:\n"
        f"  reverse_proxy /_matrix/* {upstream.removeprefix('http://')}"
    )


async def self_request_findings(client: FederationClient, config: Config) -> list[Finding]:
    """`client` signs as the configured server with its own key."""
    server_name = config.server.server_name
    trace = _StatusTrace()
    client.http.event_hooks["response"].append(trace.hook)
    query = {"user_id": f"@doctor-self-check:{server_name}", "field": "displayname"}
    what = f"A signed GET {PROFILE_PATH} from {server_name} to itself"
    try:
        await client.get_json(server_name, PROFILE_PATH, query=query)
    except RemoteError as e:
        return [_remote_error(e, what, config)]
    except UnreachableError as e:
        if trace.statuses:
            return [_not_forwarded(f"{what} got HTTP {trace.statuses[-1]} with a non-JSON body", config)]
        return [Finding(
            CHECK, "federation", Status.FAIL, f"{what} failed: {e.message}.",
            "Fix the DNS and TLS findings above first: peers cannot reach the server either.",
        )]
    return [Finding(CHECK, "federation", Status.OK, f"{what} was accepted (200).")]


def _remote_error(e: RemoteError, what: str, config: Config) -> Finding:
    body: Any = e.body
    if not isinstance(body, dict) or not isinstance(body.get("errcode"), str):
        if e.status >= 500:
            return Finding(
                CHECK, "federation", Status.FAIL,
                f"{what} got HTTP {e.status} without a Matrix error: the reverse proxy cannot"
                f" reach dendrite-lite at {_upstream(config)}.",
                "Start dendrite-lite (`systemctl start dendrite-lite`) and make the proxy's"
                f" upstream its federation listener, {_upstream(config)} (listen.federation).",
            )
        return _not_forwarded(f"{what} got HTTP {e.status} without a Matrix error", config)
    if e.status in (401, 403) and e.errcode in _AUTH_ERRCODES:
        return Finding(
            CHECK, "federation", Status.FAIL,
            f"{what} was refused with {e.status} {e.errcode} ({body.get('error')}): a reverse"
            " proxy strips the Authorization header or rewrites the request URI (the signature"
            " covers both), or the address reaches another server with another signing key."
            " Peers' requests fail the same way.",
            proxy_fix(config),
        )
    return Finding(
        CHECK, "federation", Status.OK,
        f"{what} reached the homeserver and its signature was accepted (it answered"
        f" {e.status} {e.errcode} for a user that does not exist).",
    )


def _not_forwarded(why: str, config: Config) -> Finding:
    return Finding(
        CHECK, "federation", Status.FAIL,
        f"{why}: /_matrix/federation is not forwarded to dendrite-lite, so peers cannot send"
        " it messages, invites or joins.",
        proxy_fix(config),
    )
