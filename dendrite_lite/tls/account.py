"""The ACME account: its key (ECDSA P-256, signing as ES256) and its registration with the CA,
kept in <acme_dir>/account.json (0600) and reused across restarts and renewals.

account.json: {"key": <JWK with the private part>, "directory": <the CA's directory URL>,
"uri": <the account URL there>, "contact": [...], "terms_of_service_agreed": true}. The
registration is tied to one directory: switching tls.acme_directory (staging to production)
registers the same key there.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import josepy as jose
from acme import client as acme_client
from acme import errors as acme_errors
from acme import messages

from dendrite_lite.config import Config
from dendrite_lite.tls.certs import new_key
from dendrite_lite.tls.state import ACCOUNT_FILE, write_private

__all__ = ["ensure_account", "forget_registration", "load_account_key"]


def _read(acme_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((acme_dir / ACCOUNT_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise ValueError(f"{acme_dir / ACCOUNT_FILE} is unreadable ({e}): move it away to "
                         "register a new ACME account") from None
    return data if isinstance(data, dict) else {}


def _write(acme_dir: Path, data: dict[str, Any]) -> None:
    write_private(acme_dir / ACCOUNT_FILE, (json.dumps(data, indent=2) + "\n").encode())


def load_account_key(acme_dir: Path) -> jose.JWKEC:
    """The account key, made (and saved) on first use."""
    data = _read(acme_dir)
    if "key" in data:
        key = jose.JWK.from_json(data["key"])
        if not isinstance(key, jose.JWKEC):
            raise ValueError(f"{acme_dir / ACCOUNT_FILE}: the account key is not an EC key")
        return key
    key = jose.JWKEC(key=new_key())
    _write(acme_dir, {"key": key.to_json()})
    return key


def ensure_account(client: acme_client.ClientV2, config: Config) -> messages.RegistrationResource:
    """The registration at config's directory, made when there is none yet: set on
    `client.net` so every later request is signed for it."""
    acme_dir, directory = config.acme_dir, config.tls.acme_directory
    data = _read(acme_dir)
    if data.get("uri") and data.get("directory") == directory:
        regr = messages.RegistrationResource(uri=data["uri"], body=messages.Registration())
        client.net.account = regr
        return regr
    email = config.tls.acme_email or None
    new = messages.NewRegistration.from_data(
        email=email, terms_of_service_agreed=config.tls.acme_agree_tos
    )
    try:
        regr = client.new_account(new)
    except acme_errors.ConflictError as e:
        # The key is registered there already (an account.json whose uri was lost): RFC 8555
        # §7.3.1 answers with its URL, which is all the account needs.
        regr = messages.RegistrationResource(uri=str(e.location), body=messages.Registration())
        client.net.account = regr
    data.update(
        uri=regr.uri,
        directory=directory,
        contact=[f"mailto:{email}"] if email else [],
        terms_of_service_agreed=config.tls.acme_agree_tos,
    )
    _write(acme_dir, data)
    return regr


def forget_registration(acme_dir: Path) -> None:
    """Drop the saved account URL (the CA no longer knows it); the key stays."""
    data = _read(acme_dir)
    data.pop("uri", None)
    _write(acme_dir, data)
