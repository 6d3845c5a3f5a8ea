"""A fake ACME directory on loopback for what Pebble cannot do: answer 429 rateLimited with a
Retry-After, and ACME Renewal Information (Pebble 2.4 has no ARI).

Plain HTTP in a thread (acme is synchronous and accepts http:// directories). It answers the
directory, nonces, newAccount (201, or the configured problem) and renewalInfo/<certID> from
`renewal_info`; anything else is 404. JWS bodies are not verified: this is the CA side of a
unit test, not a CA.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

__all__ = ["FakeAcme", "fake_acme"]


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class FakeAcme:
    base: str = ""
    with_ari: bool = True
    new_account: Answer = field(default_factory=lambda: Answer(201, {"status": "valid"}))
    renewal_info: dict[str, Answer] = field(default_factory=dict)  # by certID
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    _nonce: int = 0

    @property
    def directory(self) -> str:
        return f"{self.base}/dir"

    def directory_body(self) -> dict[str, Any]:
        body = {
            "newNonce": f"{self.base}/nonce",
            "newAccount": f"{self.base}/new-account",
            "newOrder": f"{self.base}/new-order",
            "revokeCert": f"{self.base}/revoke",
            "keyChange": f"{self.base}/key-change",
        }
        if self.with_ari:
            body["renewalInfo"] = f"{self.base}/renewal-info"
        return body

    def answer(self, method: str, path: str) -> Answer:
        self.requests.append((method, path))
        if path == "/dir":
            return Answer(200, self.directory_body())
        if path == "/nonce":
            return Answer(200, {})
        if path == "/new-account" and method == "POST":
            account = self.new_account
            if account.status == 201:
                account.headers.setdefault("Location", f"{self.base}/account/1")
            return account
        if path.startswith("/renewal-info/") and method == "GET":
            found = self.renewal_info.get(path.removeprefix("/renewal-info/"))
            if found is not None:
                return found
        return Answer(404, {"type": "urn:ietf:params:acme:error:malformed", "detail": "no such"})

    def next_nonce(self) -> str:
        self._nonce += 1
        return f"n{self._nonce:015d}"  # base64url: a length that is a multiple of 4


def _handler(fake: FakeAcme) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            answer = fake.answer(method, self.path)
            body = json.dumps(answer.body).encode() if method != "HEAD" else b""
            self.send_response(answer.status)
            problem = answer.status >= 400
            self.send_header(
                "Content-Type", "application/problem+json" if problem else "application/json"
            )
            self.send_header("Replay-Nonce", fake.next_nonce())
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_HEAD(self) -> None:
            self._serve("HEAD")

        def do_POST(self) -> None:
            self._serve("POST")

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def fake_acme() -> Iterator[FakeAcme]:
    fake = FakeAcme()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
