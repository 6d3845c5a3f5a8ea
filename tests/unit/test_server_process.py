"""The server's process image (server_process.py) leaves the CLI framework (typer, with pydantic)
out, loads dnspython only when a name needs an SRV lookup, the acme stack only for tls.mode =
"acme", and never httpx's optional command line (rich). (click does load: Quart imports it for
its CLI.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

_PROBE = """
import json, sys
import dendrite_lite.server_process
import dendrite_lite.server
from dendrite_lite.federation.client import FederationClient
from dendrite_lite.crypto.keys import new_server_key

# What the first federation request sets up: the pooled HTTP client and discovery.
client = FederationClient("a.example", new_server_key("k"), verify_tls=False)
client.http
client.discovery
print(json.dumps(sorted(m for m, mod in sys.modules.items() if mod is not None and (
    m.split(".")[0] in ("typer", "pydantic", "dns")))))
"""


def _loaded_after_probe(probe: str) -> list[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env,
                         timeout=60, check=True)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def test_server_image_loads_no_cli_framework_and_no_dns_until_needed() -> None:
    assert _loaded_after_probe(_PROBE) == []


def test_the_probe_would_see_them() -> None:
    # The probe is able to fail: the CLI and an SRV resolver load what the server image must not.
    loaded = _loaded_after_probe(_PROBE.replace(
        "import dendrite_lite.server_process\n",
        "import dendrite_lite.cli.main\nfrom dendrite_lite.delegation.discovery import DnsSrvResolver\n"
        "DnsSrvResolver()._dns_resolver()\n",
    ))
    assert "typer" in loaded and "dns" in loaded


def test_httpx_loads_with_the_first_federation_client_not_before() -> None:
    # A server without federation never needs httpx (nor the command line it imports when click,
    # rich and pygments are installed: 4-7 MB of RSS).
    probe = (
        "import json, sys\n"
        "import dendrite_lite.server\n"
        "from dendrite_lite.federation.client import FederationClient\n"
        "from dendrite_lite.crypto.keys import new_server_key\n"
        "client = FederationClient('a.example', new_server_key('k'), verify_tls=False)\n"
        "before = 'httpx' in sys.modules\n"
        "client.http\n"
        "print(json.dumps([before, 'httpx' in sys.modules]))\n"
    )
    assert _loaded_after_probe(probe) == [False, True]


_HEAVY_PROBE = """
import json, sys
from dendrite_lite.server_process import leave_out_unused_modules
leave_out_unused_modules()
import dendrite_lite.server
import httpx
print(json.dumps(sorted({m.split(".")[0] for m, mod in sys.modules.items() if mod is not None}
                        & {"acme", "josepy", "OpenSSL", "cryptography", "requests", "rich"})))
"""


def test_no_acme_stack_and_no_httpx_cli_in_the_server_image() -> None:
    # The acme library (with requests, josepy, pyOpenSSL, cryptography: 19 MiB of RSS) loads
    # only when tls.mode = "acme" starts the renewer; httpx's command line (rich) never.
    assert _loaded_after_probe(_HEAVY_PROBE) == []


def test_the_heavy_probe_would_see_them() -> None:
    loaded = _loaded_after_probe(_HEAVY_PROBE.replace(
        "leave_out_unused_modules()\n", "import dendrite_lite.tls.manager\n"
    ))
    assert {"acme", "cryptography", "rich"} <= set(loaded)
