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

__all__ = ["DeviceKeyring", "upload"]

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
