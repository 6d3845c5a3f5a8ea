"""A device's end-to-end keys for the key and to-device tests: a real ed25519 key that signs the
device keys and one-time keys the way clients do (appendices §Signing JSON)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from nacl.signing import SigningKey
from signedjson.key import encode_verify_key_base64
from signedjson.sign import sign_json

from tests.integration.sync_helpers import User

__all__ = ["CrossSigning", "DeviceKeyring", "upload"]

_key_ids = itertools.count(1)


@dataclass
class DeviceKeyring:
    user_id: str
    device_id: str
    signing_key: SigningKey = field(default_factory=SigningKey.generate)

    @classmethod
    def of(cls, user: User) -> DeviceKeyring:
        return cls(user.user_id, user.device_id)

    @property
    def ed25519(self) -> str:
        return encode_verify_key_base64(self.signing_key.verify_key)

    def sign(self, obj: dict[str, Any]) -> dict[str, Any]:
        key = self.signing_key
        key.version = self.device_id  # signedjson names the signature ed25519:<version>
        key.alg = "ed25519"
        return sign_json(obj, self.user_id, key)  # type: ignore[no-any-return]

    def device_keys(self, **extra: Any) -> dict[str, Any]:
        return self.sign({
            "user_id": self.user_id,
            "device_id": self.device_id,
            "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
            "keys": {
                f"curve25519:{self.device_id}": "c" * 43,
                f"ed25519:{self.device_id}": self.ed25519,
            },
            **extra,
        })

    def one_time_keys(self, n: int, *, fallback: bool = False) -> dict[str, Any]:
        out = {}
        for _ in range(n):
            key_id = f"AAAA{next(_key_ids)}"
            body: dict[str, Any] = {"key": f"otk{key_id}"}
            if fallback:
                body["fallback"] = True
            out[f"signed_curve25519:{key_id}"] = self.sign(body)
        return out


async def upload(user: User, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
    resp = await user.post("/keys/upload", body)
    assert resp.status_code == status, resp.text
    return resp.json()  # type: ignore[no-any-return]


def _self_named_key() -> SigningKey:
    """An ed25519 key whose signatures are named ed25519:<its public key>, as cross-signing
    keys' are."""
    key = SigningKey.generate()
    key.version = encode_verify_key_base64(key.verify_key)
    key.alg = "ed25519"
    return key


@dataclass
class CrossSigning:
    """A user's master, self-signing and user-signing keys, as a client makes them."""

    user_id: str
    keys: dict[str, SigningKey] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for usage in ("master", "self_signing", "user_signing"):
            self.keys[usage] = _self_named_key()

    def public(self, usage: str) -> str:
        return encode_verify_key_base64(self.keys[usage].verify_key)

    def key(self, usage: str, signed_by: str | None = "master") -> dict[str, Any]:
        public = self.public(usage)
        obj = {"user_id": self.user_id, "usage": [usage], "keys": {f"ed25519:{public}": public}}
        if usage == "master" or signed_by is None:
            return obj
        return self.sign(obj, signed_by)

    def sign(self, obj: dict[str, Any], usage: str) -> dict[str, Any]:
        return sign_json(obj, self.user_id, self.keys[usage])  # type: ignore[no-any-return]

    def upload_body(self) -> dict[str, Any]:
        return {
            "master_key": self.key("master"),
            "self_signing_key": self.key("self_signing"),
            "user_signing_key": self.key("user_signing"),
        }
