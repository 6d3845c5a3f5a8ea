"""POST /_dendrite_lite/admin/v1/federation/check/{serverName}: the doctor's checks of one
server name as this server reaches it (discovery, DNS, TLS, keys, version endpoint, clock),
so the TUI can diagnose a failing destination through the admin socket. Server admins only.

Certificates are checked against the system CAs plus `federation.ca_file`, the trust the
federation client has; the doctor never skips the check, even with federation.verify_tls off.

The admin client gives up after 10 s, so each network step gets 3 s and the whole check 9 s;
a name that stays silent that long gets one FAIL finding that says so, and the CLI's doctor
(no such bound) is the way to see every check.
"""

from __future__ import annotations

import asyncio
import dataclasses

from quart import Blueprint, Response, jsonify

from dendrite_lite.api.admin import require_admin
from dendrite_lite.api.app import services

__all__ = ["bp"]

bp = Blueprint("dendrite_lite_admin_federation_check", __name__)

STEP_TIMEOUT_S = 3.0
CHECK_TIMEOUT_S = 9.0


@bp.post("/_dendrite_lite/admin/v1/federation/check/<server_name>")
async def check_server(server_name: str) -> Response:
    """POST /_dendrite_lite/admin/v1/federation/check/{serverName}"""
    svc = services()
    await require_admin(svc)
    # Imported here: the checks bring httpx, dnspython and cryptography, which the server image
    # loads only when something needs them (tests/unit/test_server_process.py).
    from dendrite_lite.delegation.doctor import (
        DoctorNetwork,
        Finding,
        Status,
        diagnose,
        worst,
    )

    ca_file = svc.config.federation.ca_file
    network = DoctorNetwork.default([str(ca_file)] if ca_file is not None else None)
    network = dataclasses.replace(network, timeout_s=STEP_TIMEOUT_S)
    try:
        findings = await asyncio.wait_for(
            diagnose(server_name, network), CHECK_TIMEOUT_S
        )
    except TimeoutError:
        findings = [
            Finding(
                "check.timeout",
                "federation",
                Status.FAIL,
                f"The checks of {server_name} did not finish in {CHECK_TIMEOUT_S:.0f} s: it answers"
                " too slowly or not at all.",
                f"Run `dendrite-lite doctor {server_name}` on the server to see every check.",
            )
        ]
    return jsonify(
        {
            "server_name": server_name,
            "status": worst(findings).value,
            "findings": [f.to_json() for f in findings],
        }
    )
