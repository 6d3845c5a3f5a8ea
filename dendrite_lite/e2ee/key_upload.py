"""Checking a POST /keys/upload body before anything is stored (keys.yaml, end_to_end_encryption.md
§Uploading keys). Pure: no I/O.

- device keys must name the uploading user and device, and have the spec's shape (algorithms,
  keys, signatures). Their key values and self-signature are opaque here: clients verify the
  signature of every device key they fetch (end_to_end_encryption.md §Downloading keys), and
  Synapse, like the spec, does not check it on upload (SyTest uploads placeholder keys);
- one-time and fallback keys are `<algorithm>:<key_id>` -> a key string or a key object;
- at most one fallback key per algorithm (the server keeps one per algorithm).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.request_body import optional_field

__all__ = ["KeyUpload", "check_device_keys", "parse_key_upload", "split_key_id"]

# Fallback keys before Matrix 1.2 (MSC2732); older clients still send them under this name.
UNSTABLE_FALLBACK_KEYS = "org.matrix.msc2732.fallback_keys"

Key = tuple[str, str, Any]  # (algorithm, key_id, key)


@dataclass(frozen=True, slots=True)
class KeyUpload:
    device_keys: dict[str, Any] | None = None
    one_time_keys: list[Key] = field(default_factory=list)
    fallback_keys: list[Key] = field(default_factory=list)


def _invalid(message: str) -> MatrixError:
    return MatrixError(Errcode.INVALID_PARAM, message)


def split_key_id(name: str, what: str) -> tuple[str, str]:
    """`<algorithm>:<key_id>` -> (algorithm, key_id); 400 M_INVALID_PARAM otherwise."""
    algorithm, sep, key_id = name.partition(":")
    if not sep or not algorithm or not key_id:
        raise _invalid(f"{what} key name {name[:100]!r} is not <algorithm>:<key_id>")
    return algorithm, key_id


def _keys(body: Mapping[str, Any], name: str) -> list[Key]:
    value = optional_field(body, name, "object")
    out: list[Key] = []
    for key_name, key in (value or {}).items():
        algorithm, key_id = split_key_id(key_name, name)
        if not isinstance(key, (str, dict)):
            raise MatrixError(Errcode.BAD_JSON, f"{name}.{key_name} must be a string or an object")
        out.append((algorithm, key_id, key))
    return out


def check_device_keys(keys: Mapping[str, Any], user_id: str, device_id: str) -> None:
    """400 unless `keys` name this user and device and have the shape of DeviceKeys."""
    if keys.get("user_id") != user_id or keys.get("device_id") != device_id:
        raise _invalid("device_keys.user_id and device_id must be the uploading user and device")
    algorithms = keys.get("algorithms")
    if not isinstance(algorithms, list) or not all(isinstance(a, str) for a in algorithms):
        raise MatrixError(Errcode.BAD_JSON, "device_keys.algorithms must be a list of strings")
    key_map = keys.get("keys")
    if not isinstance(key_map, dict) or not all(isinstance(v, str) for v in key_map.values()):
        raise MatrixError(Errcode.BAD_JSON, "device_keys.keys must map key ids to strings")
    signatures = keys.get("signatures")
    if not isinstance(signatures, dict) or not all(
        isinstance(by_key, dict) and all(isinstance(s, str) for s in by_key.values())
        for by_key in signatures.values()
    ):
        raise MatrixError(
            Errcode.BAD_JSON, "device_keys.signatures must map user ids to key ids to strings"
        )


def parse_key_upload(body: Mapping[str, Any], user_id: str, device_id: str) -> KeyUpload:
    device_keys = optional_field(body, "device_keys", "object")
    if device_keys is not None:
        device_keys = {k: v for k, v in device_keys.items() if k != "unsigned"}
        check_device_keys(device_keys, user_id, device_id)
    fallback_name = "fallback_keys" if "fallback_keys" in body else UNSTABLE_FALLBACK_KEYS
    fallback = _keys(body, fallback_name)
    algorithms = [alg for alg, _, _ in fallback]
    if len(set(algorithms)) != len(algorithms):
        raise _invalid("fallback_keys may hold one key per algorithm")
    return KeyUpload(device_keys, _keys(body, "one_time_keys"), fallback)
