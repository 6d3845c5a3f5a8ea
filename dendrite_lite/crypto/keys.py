"""The server's ed25519 signing key, in Synapse's key file format.

A key file holds one line per key: `ed25519 <version> <unpadded-base64 seed>`; the key id is
`ed25519:<version>`. signedjson reads and writes that format, so a key written here loads in
Synapse and the other way round.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from signedjson.key import (
    encode_verify_key_base64,
    generate_signing_key,
    get_verify_key,
    read_signing_keys,
    write_signing_keys,
)
from signedjson.types import SigningKey, VerifyKey

__all__ = [
    "ServerKey",
    "KeyFileError",
    "new_server_key",
    "load_signing_key",
    "write_signing_key",
]


class KeyFileError(Exception):
    pass


@dataclass(frozen=True)
class ServerKey:
    signing_key: SigningKey

    @property
    def key_id(self) -> str:
        return f"{self.signing_key.alg}:{self.signing_key.version}"

    @property
    def verify_key(self) -> VerifyKey:
        return get_verify_key(self.signing_key)

    @property
    def verify_key_base64(self) -> str:
        return encode_verify_key_base64(self.verify_key)


def new_server_key(version: str | None = None) -> ServerKey:
    # A random version (like Synapse's "a_XXXX") so a regenerated key never reuses an old key id.
    return ServerKey(generate_signing_key(version or f"a_{secrets.token_hex(2)}"))


def load_signing_key(path: Path) -> ServerKey:
    """Load the first key of a Synapse-format key file."""
    try:
        with open(path) as f:
            keys = read_signing_keys(f)
    except FileNotFoundError:
        raise KeyFileError(f"signing key file {path} does not exist") from None
    except (OSError, ValueError, IndexError) as e:
        raise KeyFileError(f"signing key file {path} is not a valid key file: {e}") from None
    if not keys:
        raise KeyFileError(f"signing key file {path} holds no key")
    return ServerKey(keys[0])


def write_signing_key(path: Path, key: ServerKey, *, overwrite: bool = False) -> None:
    """Write the key file with mode 0600, created that way so the seed is never world-readable."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise KeyFileError(f"signing key file {path} already exists") from None
    with os.fdopen(fd, "w") as f:
        write_signing_keys(f, [key.signing_key])
    os.chmod(path, 0o600)
