"""The two federation endpoints every peer calls first, fetched through the federation client
(the same resolution, SNI, Host header and target fallback as real federation traffic):

- `GET /_matrix/key/v2/server` (§Retrieving server keys): names the server, is still valid,
  and every ed25519 key in `verify_keys` has signed it;
- `GET /_matrix/federation/v1/version`: answers with the implementation's name and version;
- the clock: the `Date` header of those answers against ours. Signed requests and events carry
  timestamps and key validity is time-bound, so a skewed clock breaks federation quietly.
"""

from __future__ import annotations

import email.utils
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from dendrite_lite.crypto.signing import (
    SignatureError,
    decode_verify_key,
    verify_json_signature,
)
from dendrite_lite.delegation.doctor.findings import Finding, Status
from dendrite_lite.federation.client import FederationClient, FederationError

__all__ = ["CLOCK_SKEW_FAIL_S", "CLOCK_SKEW_WARN_S", "DateTrace", "clock_finding", "key_findings", "version_findings"]

KEY_PATH = "/_matrix/key/v2/server"
VERSION_PATH = "/_matrix/federation/v1/version"
CLOCK_SKEW_WARN_S = 30.0
# Past this it is no longer drift but a clock that is not synchronised at all (NTP keeps it
# within a second); five minutes is also Kerberos' classic tolerance.
CLOCK_SKEW_FAIL_S = 300.0
_NTP_FIX = "Keep the server's clock in sync with NTP (systemd-timesyncd or chrony: `timedatectl set-ntp true`)."


@dataclass(slots=True)
class DateTrace:
    """(peer's Date, our clock when the answer came) for each federation answer."""

    clock: Callable[[], float]
    seen: list[tuple[float, float]] = field(default_factory=list)

    async def hook(self, response: httpx.Response) -> None:
        date = response.headers.get("date")
        parsed = email.utils.parsedate_to_datetime(date) if date else None
        if parsed is not None:
            self.seen.append((parsed.timestamp(), self.clock()))


def _unreachable(check: str, area: str, path: str, e: FederationError) -> Finding:
    return Finding(
        check, area, Status.FAIL, f"GET {path} failed: {e.message}.",
        "Fix the DNS and TLS findings above first; the federation listener must answer this path"
        " (a reverse proxy must forward /_matrix/ to it).",
    )


async def key_findings(client: FederationClient, server_name: str, now_ms: int) -> list[Finding]:
    try:
        body: Any = await client.get_json(server_name, KEY_PATH, sign=False)
    except FederationError as e:
        return [_unreachable("keys.fetch", "keys", KEY_PATH, e)]
    if not isinstance(body, dict):
        return [Finding("keys.fetch", "keys", Status.FAIL, f"{KEY_PATH} is not a JSON object.",
                        "Serve the server's signed key document there (the homeserver does by itself).")]
    out = []
    published = body.get("server_name")
    if published != server_name:
        out.append(Finding(
            "keys.server_name", "keys", Status.FAIL,
            f"The key document is for {published!r}, not {server_name!r}: peers reject its keys.",
            f'Set server_name to exactly "{server_name}" (dendrite-lite: `server_name ='
            f' "{server_name}"` in [server]), or point {server_name} at the server that owns it.',
        ))
    else:
        out.append(Finding("keys.server_name", "keys", Status.OK, f"The key document names {server_name}."))
    out.append(_validity_finding(body.get("valid_until_ts"), now_ms))
    if published == server_name:
        out += _signature_findings(body, server_name)
    return out


def _validity_finding(valid_until: Any, now_ms: int) -> Finding:
    if not isinstance(valid_until, int) or isinstance(valid_until, bool):
        return Finding("keys.valid_until", "keys", Status.FAIL, "The key document has no integer valid_until_ts.",
                       "Upgrade the homeserver: valid_until_ts is required since server-server API r0.1.")
    if valid_until <= now_ms:
        ago = (now_ms - valid_until) / 1000
        return Finding(
            "keys.valid_until", "keys", Status.FAIL,
            f"The key document expired {ago:.0f} s ago (valid_until_ts {valid_until}): peers refetch it"
            " at every request and may reject events.",
            "Restart the homeserver so it re-signs its keys, and check its clock. " + _NTP_FIX,
        )
    hours = (valid_until - now_ms) / 3_600_000
    return Finding("keys.valid_until", "keys", Status.OK, f"The key document is valid for {hours:.1f} more hours.")


def _signature_findings(body: dict[str, Any], server_name: str) -> list[Finding]:
    verify_keys = body.get("verify_keys")
    if not isinstance(verify_keys, dict) or not verify_keys:
        return [Finding("keys.signature", "keys", Status.FAIL, "The key document lists no verify_keys.",
                        "Generate a signing key: `dendrite-lite generate-keys`, then restart.")]
    out = []
    for key_id, entry in sorted(verify_keys.items()):
        if not key_id.startswith("ed25519:"):
            continue
        b64 = entry.get("key") if isinstance(entry, dict) else None
        try:
            verify_key = decode_verify_key(key_id, b64 if isinstance(b64, str) else "")
            verify_json_signature(body, server_name, key_id, verify_key)
        except (ValueError, SignatureError) as e:
            out.append(Finding(
                "keys.signature", "keys", Status.FAIL, f"Key {key_id}: {e}; peers reject this key.",
                "The key file and the published key disagree: restart the homeserver, or if it"
                " persists, `dendrite-lite generate-keys --force` and restart.",
            ))
            continue
        out.append(Finding("keys.signature", "keys", Status.OK, f"Key {key_id} signs the key document."))
    if not out:
        out.append(Finding("keys.signature", "keys", Status.FAIL, "The key document has no ed25519 key.",
                           "Generate a signing key: `dendrite-lite generate-keys`, then restart."))
    return out


async def version_findings(client: FederationClient, server_name: str) -> list[Finding]:
    try:
        body: Any = await client.get_json(server_name, VERSION_PATH, sign=False)
    except FederationError as e:
        return [_unreachable("federation.version", "federation", VERSION_PATH, e)]
    server = body.get("server") if isinstance(body, dict) else None
    name = server.get("name") if isinstance(server, dict) else None
    version = server.get("version") if isinstance(server, dict) else None
    if not isinstance(name, str) or not isinstance(version, str):
        return [Finding(
            "federation.version", "federation", Status.WARN,
            f"{VERSION_PATH} answers without server.name and server.version.",
            "Make sure /_matrix/ reaches the homeserver and not another web application.",
        )]
    return [Finding("federation.version", "federation", Status.OK, f"The server runs {name} {version}.")]


def clock_finding(trace: DateTrace) -> Finding:
    if not trace.seen:
        return Finding("federation.clock", "federation", Status.WARN,
                       "No answer carried a Date header: the clock skew is unknown.", None)
    # Date has one-second resolution: the answer with the smallest skew is the fairest reading.
    skew = min((theirs - ours for theirs, ours in trace.seen), key=abs)
    direction = "ahead of" if skew > 0 else "behind"
    if abs(skew) > CLOCK_SKEW_FAIL_S:
        return Finding(
            "federation.clock", "federation", Status.FAIL,
            f"The server's clock is {abs(skew):.0f} s {direction} this machine's: its events carry"
            " wrong timestamps (clients show them out of order), key validity is judged by those"
            " timestamps, and past an hour new TLS certificates are not valid yet on one side.",
            _NTP_FIX + " (Check this machine's clock too.)",
        )
    if abs(skew) > CLOCK_SKEW_WARN_S:
        return Finding(
            "federation.clock", "federation", Status.WARN,
            f"The server's clock is {abs(skew):.0f} s {direction} this machine's.",
            _NTP_FIX + " (Check this machine's clock too.)",
        )
    return Finding("federation.clock", "federation", Status.OK,
                   f"The server's clock is within {max(abs(skew), 1):.0f} s of this machine's.")
