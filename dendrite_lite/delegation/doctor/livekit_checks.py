"""Whether Element Call can reach the LiveKit SFU's token service of [calls], for the
configured server: `calls.livekit_service_url` is https (a browser's Element Call, served over
https, refuses an http fetch) and lk-jwt-service answers 200 at its `/healthz` endpoint.

The request goes through the doctor's transport (its trust and address overrides) and
outbound_http's `fetch`, as the client well-known checks' do.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from dendrite_lite.config import CallsConfig
from dendrite_lite.delegation.doctor.findings import Finding, Status
from dendrite_lite.delegation.doctor.network import DoctorNetwork
from dendrite_lite.outbound_http import HttpError, fetch, new_client

__all__ = ["livekit_findings"]

AREA = "calls"
HEALTH_PATH = "/healthz"  # lk-jwt-service's liveness endpoint
_MAX_BODY_BYTES = 4096  # it answers an empty body
_SFU_ERROR = "Element Call will show 'Failed to connect to the SFU'"


async def livekit_findings(calls: CallsConfig, network: DoctorNetwork) -> list[Finding]:
    url = calls.livekit_service_url.rstrip("/")
    if not url:
        return [Finding(
            "calls.livekit", AREA, Status.OK,
            "calls.livekit_service_url is not set: clients are offered no LiveKit SFU, so Element"
            ' Call (group calls, and calls in Element X) cannot start; see the README, "Calls'
            ' (Element Call / MatrixRTC)".',
        )]
    out = []
    if urlsplit(url).scheme != "https":
        out.append(Finding(
            "calls.livekit_https", AREA, Status.WARN,
            f"calls.livekit_service_url {url} is not https: Element Call in a browser is served"
            " over https and refuses to fetch an http URL, so its calls cannot start.",
            "Serve lk-jwt-service through your reverse proxy with TLS and set"
            ' `livekit_service_url = "https://<its host>"` in [calls].',
        ))
    health = f"{url}{HEALTH_PATH}"
    fix = (f"Start lk-jwt-service (LIVEKIT_URL, LIVEKIT_KEY and LIVEKIT_SECRET set; it listens on"
           f" port 8080) and make the reverse proxy pass {url}/ to it.")
    http = new_client(network.transport())
    try:
        answer = await fetch(
            http, "GET", health, max_body_bytes=_MAX_BODY_BYTES, timeout_s=network.timeout_s,
            connect_timeout_s=network.timeout_s,
        )
    except HttpError as e:
        out.append(Finding("calls.livekit", AREA, Status.FAIL,
                           f"lk-jwt-service is not reachable at {health} ({e}); {_SFU_ERROR}.", fix))
        return out
    finally:
        await http.aclose()
    if answer.status != 200:
        out.append(Finding("calls.livekit", AREA, Status.FAIL,
                           f"lk-jwt-service is not healthy at {health}: it answers HTTP {answer.status};"
                           f" {_SFU_ERROR}.", fix))
    else:
        out.append(Finding("calls.livekit", AREA, Status.OK, f"lk-jwt-service answers at {health}."))
    return out
