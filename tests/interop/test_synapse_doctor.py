"""`dendrite-lite doctor` against the session's real Synapse (127.0.0.1:<port>, self-signed
certificate trusted with --ca-file): a healthy peer gets no FAIL, and the CLI exits 0."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from dendrite_lite.cli.main import app
from tests.interop.synapse_server import SynapseServer

pytestmark = pytest.mark.interop


def test_doctor_finds_synapse_healthy(synapse: SynapseServer) -> None:
    cert = synapse.workdir / "tls" / "tls.crt"
    result = CliRunner().invoke(
        app, ["doctor", synapse.server_name, "--ca-file", str(cert), "--json"],
        env={"DENDRITE_LITE_CONFIG": None},
    )
    assert result.exit_code == 0, result.output
    findings = {f["check"]: f for f in json.loads(result.stdout)}
    assert [f for f in findings.values() if f["status"] == "FAIL"] == []
    assert findings["tls.chain"]["status"] == "OK"
    assert findings["tls.name"]["why"] == f"{synapse.server_name}: the certificate is valid for 127.0.0.1."
    # The test certificate lives two days: a real deployment would want to renew it.
    assert findings["tls.expiry"]["status"] == "WARN"
    assert findings["keys.server_name"]["why"] == f"The key document names {synapse.server_name}."
    assert findings["keys.signature"]["status"] == "OK"
    assert findings["keys.valid_until"]["status"] == "OK"
    assert findings["federation.version"]["why"].startswith("The server runs Synapse 1.")
    assert findings["federation.clock"]["status"] == "OK"
