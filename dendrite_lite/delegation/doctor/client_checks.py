"""Findings about how clients discover the homeserver (client-server-api §Well-known URIs):
`https://<hostname>/.well-known/matrix/client`, its CORS header (§Web Browser Clients) and the
`m.homeserver.base_url` it names, checked the way the spec tells clients to check it, by
`GET <base_url>/_matrix/client/versions`.

The requests go through the doctor's transport (its trust and address overrides) and
outbound_http's `fetch`, so a huge or slow answer is cut off as federation's are.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from dendrite_lite.delegation.discovery import split_server_name
from dendrite_lite.delegation.doctor.findings import Finding, Status
from dendrite_lite.delegation.doctor.network import DEFAULT_TIMEOUT_S
from dendrite_lite.outbound_http import Answer, HttpError, fetch

__all__ = ["CLIENT_WELL_KNOWN_PATH", "VERSIONS_PATH", "client_findings"]

CLIENT_WELL_KNOWN_PATH = "/.well-known/matrix/client"
VERSIONS_PATH = "/_matrix/client/versions"
_MAX_BODY_BYTES = 51_200  # discovery.py's cap for /.well-known/matrix/server
# The spec (v1.20) says clients SHOULD follow redirects but avoid loops; browsers stop at 20,
# a handful is already more than a well-known file needs.
_MAX_REDIRECTS = 5
_REDIRECTS = (301, 302, 303, 307, 308)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def client_findings(
    http: httpx.AsyncClient, server_name: str, *, public_baseurl: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> list[Finding]:
    """`public_baseurl`: the configured one when the doctor runs on the local config, so the
    suggested file names the URL this server really serves the client API on."""
    host, _ = split_server_name(server_name)
    url = f"https://{_url_host(host)}{CLIENT_WELL_KNOWN_PATH}"
    base = (public_baseurl or f"https://{_url_host(host)}").rstrip("/")
    document = json.dumps({"m.homeserver": {"base_url": base}})
    fix_file = (
        f"Serve {url} with status 200, the header `Access-Control-Allow-Origin: *` and the JSON"
        f" content {document}"
    )
    try:
        final_url, answer = await _get(http, url, timeout_s)
    except _Unusable as e:
        return [Finding("client.well_known", "client", Status.FAIL, f"{url}: {e}.", fix_file)]
    except HttpError as e:
        # Clients treat "no answer" like a missing file: users must type the homeserver URL.
        return [Finding(
            "client.well_known", "client", Status.WARN,
            f"{url} has no HTTPS answer ({e}): clients cannot find the homeserver from a user ID"
            f" on {host}, so users must type its URL.", fix_file,
        )]
    if answer.status == 404:
        return [Finding(
            "client.well_known", "client", Status.WARN,
            f"{url} answers 404: clients cannot find the homeserver from a user ID on {host},"
            " so users must type its URL.", fix_file,
        )]
    if answer.status != 200:
        return [Finding(
            "client.well_known", "client", Status.WARN,
            f"{url} answers HTTP {answer.status}: clients report that auto-discovery failed"
            " and ask for the homeserver URL (spec: FAIL_PROMPT).", fix_file,
        )]
    out = [_cors_finding(final_url, answer.headers)]
    base_url, problem = _base_url(answer.body)
    if base_url is None:
        out.insert(0, Finding("client.well_known", "client", Status.FAIL, f"{final_url}: {problem}.", fix_file))
        return out
    out.insert(0, Finding("client.well_known", "client", Status.OK, f"{final_url}: m.homeserver.base_url is {base_url!r}."))
    url_finding = _base_url_finding(base_url, base)
    out.append(url_finding)
    if url_finding.status is not Status.FAIL:
        out.append(await _versions_finding(http, base_url, timeout_s))
    return out


class _Unusable(Exception):
    """The well-known answer can never lead anywhere: a redirect loop or a non-https hop."""


async def _get(http: httpx.AsyncClient, url: str, timeout_s: float) -> tuple[str, Answer]:
    seen = [url]
    for _ in range(_MAX_REDIRECTS + 1):
        answer = await fetch(
            http, "GET", url, max_body_bytes=_MAX_BODY_BYTES, timeout_s=timeout_s,
            connect_timeout_s=timeout_s,
        )
        location = answer.headers.get("location")
        if answer.status not in _REDIRECTS or not location:
            return url, answer
        url = urljoin(url, location)
        if urlsplit(url).scheme != "https":
            raise _Unusable(f"redirect to a non-https URL {url}")
        if url in seen:
            raise _Unusable(f"redirect loop ({' -> '.join([*seen, url])})")
        seen.append(url)
    raise _Unusable(f"more than {_MAX_REDIRECTS} redirects ({' -> '.join(seen)})")


def _base_url(body: bytes | bytearray) -> tuple[str | None, str]:
    """(m.homeserver.base_url, "") or (None, what is wrong with the document)."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        return None, "the answer is not JSON, so clients report that auto-discovery failed"
    if not isinstance(document, dict):
        return None, "the answer is not a JSON object, so clients report that auto-discovery failed"
    homeserver = document.get("m.homeserver")
    base_url = homeserver.get("base_url") if isinstance(homeserver, dict) else None
    if not isinstance(base_url, str) or not base_url:
        return None, "no m.homeserver.base_url string, so clients report that auto-discovery failed"
    return base_url, ""


def _base_url_finding(base_url: str, suggested: str) -> Finding:
    try:
        parts = urlsplit(base_url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        _ = parts.port  # raises ValueError for a port that is not a number
    except ValueError:
        valid = False
    if not valid:
        # FAIL_ERROR in the spec: the client stops the login there.
        return Finding(
            "client.base_url", "client", Status.FAIL,
            f"m.homeserver.base_url {base_url!r} is not an http(s) URL: clients refuse to log in.",
            f'Set "base_url" to the URL of the client API, e.g. "{suggested}".',
        )
    if parts.scheme == "http":
        return Finding(
            "client.base_url", "client", Status.WARN,
            f"m.homeserver.base_url {base_url!r} is plain http: passwords and access tokens cross"
            " the network unencrypted, and web clients served over https cannot call it.",
            f'Serve the client API over HTTPS and set "base_url" to "https://{parts.netloc}".',
        )
    return Finding("client.base_url", "client", Status.OK, f"m.homeserver.base_url {base_url!r} is an https URL.")


def _cors_finding(url: str, headers: httpx.Headers) -> Finding:
    origin = headers.get("access-control-allow-origin")
    if origin == "*":
        return Finding("client.cors", "client", Status.OK, f"{url} sends Access-Control-Allow-Origin: *.")
    fix = f"Send the header `Access-Control-Allow-Origin: *` with {url}."
    if origin is None:
        return Finding(
            "client.cors", "client", Status.FAIL,
            f"{url} has no Access-Control-Allow-Origin header: browser clients such as Element"
            " Web cannot read it, so their users must type the homeserver URL.", fix,
        )
    return Finding(
        "client.cors", "client", Status.WARN,
        f"{url} sends Access-Control-Allow-Origin: {origin}, so only web clients served from that"
        " origin can read it.", fix,
    )


async def _versions_finding(http: httpx.AsyncClient, base_url: str, timeout_s: float) -> Finding:
    # The spec allows a trailing slash on base_url; clients strip it before appending a path.
    url = base_url.rstrip("/") + VERSIONS_PATH
    fix = (
        f"Make {url} reach the homeserver's client listener (listen.client; a reverse proxy must"
        " forward /_matrix/ to it), or correct m.homeserver.base_url."
    )
    try:
        answer = await fetch(
            http, "GET", url, max_body_bytes=_MAX_BODY_BYTES, timeout_s=timeout_s,
            connect_timeout_s=timeout_s,
        )
    except HttpError as e:
        return Finding("client.versions", "client", Status.FAIL,
                       f"GET {url} failed ({e}): clients refuse this homeserver.", fix)
    if answer.status != 200:
        return Finding("client.versions", "client", Status.FAIL,
                       f"GET {url} answers HTTP {answer.status}: clients refuse this homeserver.", fix)
    try:
        body: Any = json.loads(answer.body)
    except (UnicodeDecodeError, ValueError):
        body = None
    versions = body.get("versions") if isinstance(body, dict) else None
    if not isinstance(versions, list) or not all(isinstance(v, str) for v in versions) or not versions:
        return Finding("client.versions", "client", Status.FAIL,
                       f"GET {url} does not answer a JSON object with a versions list: clients"
                       " refuse this homeserver.", fix)
    return Finding("client.versions", "client", Status.OK,
                   f"{url} lists {len(versions)} spec versions, up to {versions[-1]}.")
