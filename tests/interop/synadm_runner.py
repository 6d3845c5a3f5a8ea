"""synadm (the Synapse admin CLI, from PyPI) as a real client of our admin API.

    synadm = Synadm.for_server(tmp_path, base_url, admin_token, server_name="test.localhost")
    result = await synadm.run("user", "details", "@alice:test.localhost")
    assert result.returncode == 0 and result.json["name"] == "@alice:test.localhost"

Each run is a subprocess (`python -m synadm --batch -o minified -c <config> ...`), awaited
without blocking the event loop our test servers run on. synadm reads its settings from a YAML
file only (`synadm config` is interactive), so `Synadm.for_server` writes one: the homeserver
name is given (no discovery through the federation API), output is minified JSON, one document a
line. Some commands print text around their JSON (`user modify` prints the user's details
first), so every line that parses as JSON is kept, in order; `json` is the last one.

synadm answers a server error with the error's JSON body (and a warning on stderr) and exits 0,
or with a message and exit code 1 when it got no JSON at all.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.peers import peer_missing

__all__ = ["Synadm", "SynadmResult"]


@dataclasses.dataclass(frozen=True)
class SynadmResult:
    returncode: int
    stdout: str
    stderr: str
    outputs: list[Any]  # every JSON document synadm printed, in order

    @property
    def json(self) -> Any:
        """The last JSON document printed (the command's answer)."""
        if not self.outputs:
            raise AssertionError(
                f"synadm printed no JSON (exit {self.returncode})\n"
                f"stdout: {self.stdout}\nstderr: {self.stderr}"
            )
        return self.outputs[-1]


@dataclasses.dataclass(frozen=True)
class Synadm:
    config_path: Path
    timeout: float = 30.0

    @classmethod
    def for_server(
        cls,
        directory: Path,
        base_url: str,
        token: str,
        *,
        server_name: str,
        user: str = "admin",
        protocol: str = "http",
    ) -> Synadm:
        """Write a synadm config for `base_url` (a URL, or a socket path with protocol "unix")
        and an admin access token into `directory`. Without synadm installed, the test is a
        missing peer (tests/peers.py)."""
        if importlib.util.find_spec("synadm") is None:
            peer_missing("synadm is not installed (pip install -e '.[test]')")
        directory.mkdir(parents=True, exist_ok=True)
        config = {
            "user": user,
            "token": token,
            "base_url": base_url,
            "protocol": protocol,
            "admin_path": "/_synapse/admin",
            "matrix_path": "/_matrix",
            "ssl_verify": False,
            "timeout": 10,
            "format": "minified",
            "homeserver": server_name,
            "server_discovery": "well-known",
        }
        path = directory / "synadm.yaml"
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return cls(path)

    async def ok(self, *args: str) -> Any:
        """Run `synadm ARGS...`, which must exit 0, and answer the last JSON it printed."""
        result = await self.run(*args)
        assert result.returncode == 0, result
        return result.json

    async def run(self, *args: str, stdin: str | None = None) -> SynadmResult:
        """Run `synadm ARGS...` non-interactively and collect what it printed."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "synadm",
            "--batch",
            "-o",
            "minified",
            "-c",
            str(self.config_path),
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(
                proc.communicate(stdin.encode() if stdin is not None else b""),
                self.timeout,
            )
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise AssertionError(
                f"synadm {' '.join(args)} took over {self.timeout} s"
            ) from None
        stdout, stderr = out.decode(), err.decode()
        assert proc.returncode is not None
        return SynadmResult(proc.returncode, stdout, stderr, _json_lines(stdout))


def _json_lines(stdout: str) -> list[Any]:
    outputs = []
    for line in stdout.splitlines():
        line = line.strip()
        if not line or line[0] not in "{[":
            continue
        try:
            outputs.append(json.loads(line))
        except ValueError:
            continue
    return outputs
