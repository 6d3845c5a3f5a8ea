"""A dehydrated device (MSC3814) as Element makes one: a real vodozemac Olm account whose id is
its curve25519 key, with signed device and one-time keys and its pickle as device_data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import vodozemac
from signedjson.sign import encode_canonical_json

__all__ = ["OLM", "PATH", "PICKLE_KEY", "Dehydrated"]

PATH = "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device"
ALGORITHM = "org.matrix.msc3814.v1.olm"
OLM = "m.olm.v1.curve25519-aes-sha2"
PICKLE_KEY = bytes(range(32))


@dataclass
class Dehydrated:
    """An Olm account parked as a dehydrated device; its id is its curve25519 key (MSC3814)."""

    user_id: str
    account: vodozemac.Account = field(default_factory=vodozemac.Account)

    @property
    def device_id(self) -> str:
        return str(self.account.curve25519_key.to_base64())

    @property
    def in_path(self) -> str:
        """The id as a path segment: it is base64, so it may hold '/' (sent as %2F)."""
        return quote(self.device_id, safe="")

    def sign(self, obj: dict[str, Any]) -> dict[str, Any]:
        unsigned = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
        signature = self.account.sign(encode_canonical_json(unsigned)).to_base64()
        return {**obj, "signatures": {self.user_id: {f"ed25519:{self.device_id}": signature}}}

    def body(self, one_time_keys: int = 2) -> dict[str, Any]:
        self.account.generate_one_time_keys(one_time_keys)
        otks = {
            f"signed_curve25519:{key_id}": self.sign({"key": key.to_base64()})
            for key_id, key in self.account.one_time_keys.items()
        }
        self.account.mark_keys_as_published()
        device_keys = self.sign({
            "user_id": self.user_id,
            "device_id": self.device_id,
            "algorithms": [OLM, "m.megolm.v1.aes-sha2"],
            "keys": {
                f"curve25519:{self.device_id}": self.device_id,
                f"ed25519:{self.device_id}": self.account.ed25519_key.to_base64(),
            },
            "dehydrated": True,
        })
        return {
            "device_id": self.device_id,
            "device_data": {"algorithm": ALGORITHM, "device_pickle": self.account.pickle(PICKLE_KEY)},
            "initial_device_display_name": "Dehydrated device",
            "device_keys": device_keys,
            "one_time_keys": otks,
        }
