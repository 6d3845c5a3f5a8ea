"""The server's process image keeps unused library parts out of memory (server_process.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

_PROBE = """
import json, sys
from dendrite_lite.server_process import _keep_out_unused_imports
_keep_out_unused_imports()
import dendrite_lite.server
from dendrite_lite.delegation.discovery import DnsSrvResolver
from dendrite_lite.federation.client import FederationClient
from dendrite_lite.crypto.keys import new_server_key

# What the first federation request sets up: the pooled HTTP client, discovery, a resolver.
client = FederationClient("a.example", new_server_key("k"), verify_tls=False)
client.discovery
DnsSrvResolver()
print(json.dumps(sorted(m for m, mod in sys.modules.items() if mod is not None and (
    m.split(".")[0] in ("click", "h2", "dns", "multiprocessing", "rich", "httpx", "httpcore", "anyio",
                        "uvicorn")
    or m in ("importlib.metadata", "zipfile")))))
"""


def _loaded_after_probe(probe: str) -> list[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env,
                         timeout=60, check=True)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def test_server_image_loads_no_cli_no_httpx_no_package_metadata_and_no_dns_until_needed() -> None:
    assert _loaded_after_probe(_PROBE) == []


def test_the_probe_would_see_them_without_the_diet() -> None:
    # The same imports without _keep_out_unused_imports: signedjson's __init__ reads its version
    # with importlib.metadata, so the probe above is able to fail.
    loaded = _loaded_after_probe(_PROBE.replace("_keep_out_unused_imports()\n", ""))
    assert "importlib.metadata" in loaded
