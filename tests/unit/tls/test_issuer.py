"""The issuer's account handling and failure reasons (tls/issuer.py, tls/account.py) against a
fake directory: what Pebble cannot do (a 429 with Retry-After) and what needs no CA at all.
Issuance itself is tested against Pebble (tests/interop/test_acme_*.py)."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import pytest
from acme import messages

from dendrite_lite.config import Config
from dendrite_lite.tls import account
from dendrite_lite.tls.http01 import Http01Answers
from dendrite_lite.tls.issuer import (
    IssueError,
    challenge_type,
    describe_failure,
    issue,
    new_client,
)
from tests.conftest import make_config
from tests.interop.pebble import free_port
from tests.unit.tls.fake_acme import Answer, FakeAcme, fake_acme  # noqa: F401 (fixture)


def _config(tmp_path: Path, directory: str, **extra: object) -> Config:
    return make_config(tmp_path, {"tls.mode": "acme", "tls.acme_directory": directory,
                                  "tls.acme_agree_tos": True, "tls.acme_names": ("matrix.test",),
                                  **extra})


def test_account_is_registered_once_and_kept_private(
    tmp_path: Path, fake_acme: FakeAcme  # noqa: F811
) -> None:
    config = _config(tmp_path, fake_acme.directory, **{"tls.acme_email": "admin@example.org"})
    regr = account.ensure_account(new_client(config), config)
    assert regr.uri == f"{fake_acme.base}/account/1"
    path = config.acme_dir / "account.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = json.loads(path.read_text())
    assert saved["key"]["kty"] == "EC" and saved["key"]["crv"] == "P-256" and "d" in saved["key"]
    assert saved["uri"] == regr.uri and saved["directory"] == fake_acme.directory
    assert saved["contact"] == ["mailto:admin@example.org"]
    assert saved["terms_of_service_agreed"] is True
    # A second run (a restart, a renewal) reuses key and registration: no newAccount.
    client = new_client(config)
    account.ensure_account(client, config)
    assert client.net.key.thumbprint() == new_client(config).net.key.thumbprint()
    assert [r for r in fake_acme.requests if r == ("POST", "/new-account")] == [
        ("POST", "/new-account")
    ]
    assert client.net.account.uri == regr.uri


def test_rate_limit_reason_and_retry_after(tmp_path: Path, fake_acme: FakeAcme) -> None:  # noqa: F811
    fake_acme.new_account = Answer(
        429,
        {"type": "urn:ietf:params:acme:error:rateLimited",
         "detail": "too many new accounts (10) from this IP address in the last 3h0m0s"},
        {"Retry-After": "7200"},
    )
    config = _config(tmp_path, fake_acme.directory)
    with pytest.raises(IssueError) as caught:
        issue(config, Http01Answers(), None)
    assert caught.value.reason == (
        "the CA's rate limit was hit: too many new accounts (10) from this IP address in the "
        "last 3h0m0s"
    )
    assert caught.value.retry_after == pytest.approx(time.time() + 7200, abs=5)


def test_directory_down(tmp_path: Path) -> None:
    directory = f"http://127.0.0.1:{free_port()}/dir"
    with pytest.raises(IssueError) as caught:
        issue(_config(tmp_path, directory), Http01Answers(), None)
    assert caught.value.reason == f"cannot reach the ACME directory {directory}: Connection refused"
    assert caught.value.retry_after is None


def test_a_problem_is_one_line(tmp_path: Path) -> None:
    config = _config(tmp_path, "https://ca.test/dir")
    error = messages.Error(typ="urn:ietf:params:acme:error:unauthorized",
                           detail="Account is not\nallowed   here")
    assert describe_failure(error, config) == "the CA answered: Account is not allowed here"


@pytest.mark.parametrize(
    ("challenge", "acme_http", "expected"),
    [("auto", "0.0.0.0:80", "http-01"), ("auto", "", "tls-alpn-01"),
     ("tls-alpn-01", "0.0.0.0:80", "tls-alpn-01"), ("http-01", "0.0.0.0:80", "http-01")],
)
def test_challenge_type(tmp_path: Path, challenge: str, acme_http: str, expected: str) -> None:
    config = _config(tmp_path, "https://ca.test/dir",
                     **{"tls.acme_challenge": challenge, "listen.acme_http": acme_http})
    assert challenge_type(config) == expected
