"""Cross-signing (end_to_end_encryption.md §Cross-signing; cross_signing.yaml): POST
/keys/device_signing/upload, /keys/signatures/upload, and the cross-signing part of
/keys/query.

Rules kept here:
- every cross-signing key names the uploading user, its usage, and exactly one ed25519 key
  `ed25519:<public key>`; the self-signing and user-signing keys are signed by the master key
  (the one in the request, else the stored one; none at all is 400 M_MISSING_PARAM); a public
  key equal to one of the user's device ids is 403 M_FORBIDDEN;
- replacing keys needs UIA; the first upload, and re-sending exactly the stored keys, do not
  (`needs_auth`);
- uploaded signatures: the user's own devices signed by their self-signing key, their own
  master key signed by one of their devices, another user's master key signed by their
  user-signing key. The signed object must be the stored key (signatures aside);
- visibility in /keys/query: a user's user-signing key only to that user, and a signature of
  one user's key by another user's key only to the signer.
Each change enters the device list stream (device_id NULL; a new signature of a device: that
device), so room-mates re-query; a new user-signing key alone, and signatures of other users'
master keys, are changes only the user (the signer) hears of.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiosqlite

from dendrite_lite.crypto.signing import (
    SignatureError,
    decode_verify_key,
    verify_json_signature,
)
from dendrite_lite.e2ee.device_lists import DeviceListService
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.request_body import optional_field
from dendrite_lite.storage import Storage
from dendrite_lite.storage import cross_signing as table
from dendrite_lite.storage import device_lists as device_lists_table
from dendrite_lite.storage import devices as devices_table
from dendrite_lite.storage import e2e_keys as e2e_keys_table
from dendrite_lite.storage.cross_signing import Signature

__all__ = ["CrossSigningService", "add_cross_signing"]

# Request field -> key type (the `usage` the key must list).
KEY_FIELDS = {
    "master_key": "master",
    "self_signing_key": "self_signing",
    "user_signing_key": "user_signing",
}

Parsed = dict[str, tuple[dict[str, Any], str]]  # key type -> (key, public key)


def _public_key(key: Mapping[str, Any], what: str) -> str:
    keys = key.get("keys")
    if not isinstance(keys, dict) or len(keys) != 1:
        raise MatrixError(Errcode.INVALID_PARAM, f"{what}.keys must hold exactly one key")
    ((key_id, public),) = keys.items()
    if not isinstance(public, str) or key_id != f"ed25519:{public}":
        raise MatrixError(Errcode.INVALID_PARAM, f"{what}.keys must be ed25519:<key>: <key>")
    return public


def _check_key(key: Any, user_id: str, usage: str, what: str) -> str:
    """The key's public key, after checking its user and usage."""
    if key.get("user_id") != user_id:
        raise MatrixError(Errcode.INVALID_PARAM, f"{what}.user_id must be {user_id}")
    if not isinstance(key.get("usage"), list) or usage not in key["usage"]:
        raise MatrixError(Errcode.INVALID_PARAM, f"{what}.usage must contain {usage!r}")
    return _public_key(key, what)


def _verify(
    obj: Mapping[str, Any], signer: str, public: str, what: str, key_id: str | None = None
) -> str:
    """The signature of `signer`'s key `public` on obj, named `key_id` (cross-signing keys:
    ed25519:<public>; devices: ed25519:<device id>); 400 M_INVALID_SIGNATURE if it is missing
    or wrong."""
    key_id = key_id or f"ed25519:{public}"
    try:
        verify_json_signature(obj, signer, key_id, decode_verify_key(key_id, public))
    except (SignatureError, ValueError) as e:
        raise MatrixError(Errcode.INVALID_SIGNATURE, f"{what}: {e}") from None
    return str(obj["signatures"][signer][key_id])


def _same_key(obj: Mapping[str, Any], stored: Mapping[str, Any]) -> None:
    def bare(o: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in o.items() if k not in ("signatures", "unsigned")}

    if bare(obj) != bare(stored):
        raise MatrixError(Errcode.INVALID_PARAM, "The signed object is not the stored key")


class CrossSigningService:
    def __init__(self, storage: Storage, device_lists: DeviceListService) -> None:
        self._storage = storage
        self._device_lists = device_lists

    async def needs_auth(self, user_id: str, body: Mapping[str, Any]) -> bool:
        """Whether this upload must pass UIA: it would replace a stored key."""
        stored = await self._storage.db.read(
            lambda conn: table.select_cross_signing_keys(conn, user_id)
        )
        if "master" not in stored:
            return False
        return any(
            field in body and body[field] != stored.get(key_type)
            for field, key_type in KEY_FIELDS.items()
        )

    async def upload_keys(self, user_id: str, body: Mapping[str, Any]) -> None:
        """POST /_matrix/client/v3/keys/device_signing/upload, once UIA (if needed) passed."""
        parsed: Parsed = {}
        for field, key_type in KEY_FIELDS.items():
            key = optional_field(body, field, "object")
            if key is not None:
                parsed[key_type] = (key, _check_key(key, user_id, key_type, field))
        if not parsed:
            return
        await self._storage.db.write(lambda conn: _store_keys(conn, user_id, parsed))
        await self._device_lists.changed(user_id)

    async def upload_signatures(self, requester: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST /_matrix/client/v3/keys/signatures/upload -> the response body."""
        for user_id, by_key in body.items():
            if not isinstance(by_key, dict) or not all(isinstance(o, dict) for o in by_key.values()):
                raise MatrixError(Errcode.BAD_JSON, f"{user_id} must map key ids to signed objects")

        async def txn(conn: aiosqlite.Connection) -> tuple[dict[str, Any], bool]:
            own = await table.select_cross_signing_keys(conn, requester)
            failures: dict[str, Any] = {}
            # None: the cross-signing keys' signatures changed; a device id: that device's.
            changed: set[str | None] = set()
            signed_users: set[str] = set()  # other users' master keys we signed
            for user_id, by_key in body.items():
                for key_id, obj in by_key.items():
                    try:
                        signatures = await _signatures_of(conn, requester, own, user_id, key_id, obj)
                    except MatrixError as e:
                        failures.setdefault(user_id, {})[key_id] = e.to_json()
                        continue
                    for sig in signatures:
                        await table.insert_signature(conn, sig)
                    if user_id != requester:
                        signed_users.add(user_id)
                    else:
                        changed.add(await _changed_device(conn, requester, key_id))
            # A device's new signature is a change of that device (other servers then get an
            # m.device_list_update carrying it), anything else of the cross-signing keys.
            for device_id in sorted(changed, key=lambda d: d or ""):
                await device_lists_table.insert_device_list_change(conn, requester, device_id)
            # Only the signer sees their signatures of others' keys (add_cross_signing), so only
            # they hear of them.
            for user_id in sorted(signed_users):
                await device_lists_table.insert_device_list_change(
                    conn, user_id, None, seen_by=requester
                )
            return failures, bool(changed or signed_users)

        failures, stored = await self._storage.db.write(txn)
        if stored:
            await self._device_lists.changed(requester)
        return {"failures": failures}


async def _changed_device(conn: aiosqlite.Connection, requester: str, key_id: str) -> str | None:
    """The requester's device whose keys a signature of their key `key_id` changed, if any."""
    return key_id if await e2e_keys_table.select_device_keys(conn, requester, [key_id]) else None


async def _store_keys(conn: aiosqlite.Connection, user_id: str, parsed: Parsed) -> None:
    stored = await table.select_cross_signing_keys(conn, user_id)
    if "master" in parsed:
        master = parsed["master"][1]
    elif "master" in stored:
        master = _public_key(stored["master"], "master_key")
    else:
        raise MatrixError(Errcode.MISSING_PARAM, "No master key available")
    device_ids = {d.device_id for d in await devices_table.select_devices(conn, user_id)}
    for key_type, (key, public) in parsed.items():
        if public in device_ids:
            raise MatrixError(Errcode.FORBIDDEN, "Key ID in use")
        if key_type != "master":
            _verify(key, user_id, master, f"{key_type} key")
    for key_type, (key, _) in parsed.items():
        await table.upsert_cross_signing_key(conn, user_id, key_type, key)
    # The user-signing key is shown to its owner only (add_cross_signing): alone, it is a
    # change only they hear of (Synapse's user signature stream).
    seen_by = user_id if set(parsed) == {"user_signing"} else None
    await device_lists_table.insert_device_list_change(conn, user_id, None, seen_by=seen_by)


async def _signatures_of(
    conn: aiosqlite.Connection,
    requester: str,
    own: dict[str, dict[str, Any]],
    user_id: str,
    key_id: str,
    obj: dict[str, Any],
) -> list[Signature]:
    """The signatures `requester` may add with `obj` (a signed copy of the key `key_id` of
    `user_id`); a MatrixError is that key's failure."""
    if user_id == requester:
        devices = await e2e_keys_table.select_device_keys(conn, user_id, [key_id])
        if devices:  # one of our devices, signed by our self-signing key
            return [_signed_with(own, "self_signing", requester, user_id, key_id, obj, devices[0].keys)]
        master = own.get("master")
        if master is not None and key_id == _public_key(master, "master_key"):
            return await _master_signed_by_devices(conn, requester, key_id, obj, master)
    else:  # another user's master key, signed by our user-signing key
        theirs = (await table.select_cross_signing_keys(conn, user_id)).get("master")
        if theirs is not None and key_id == _public_key(theirs, "master_key"):
            return [_signed_with(own, "user_signing", requester, user_id, key_id, obj, theirs)]
    raise MatrixError(Errcode.NOT_FOUND, f"No key {key_id} of {user_id}")


def _signed_with(
    own: dict[str, dict[str, Any]],
    key_type: str,
    requester: str,
    user_id: str,
    key_id: str,
    obj: dict[str, Any],
    stored: Mapping[str, Any],
) -> Signature:
    signing = own.get(key_type)
    if signing is None:
        raise MatrixError(Errcode.INVALID_SIGNATURE, f"You have no {key_type} key to sign with")
    public = _public_key(signing, key_type)
    _same_key(obj, stored)
    signature = _verify(obj, requester, public, f"{user_id} {key_id}")
    return Signature(user_id, key_id, requester, f"ed25519:{public}", signature)


async def _master_signed_by_devices(
    conn: aiosqlite.Connection, user_id: str, key_id: str, obj: dict[str, Any], master: Mapping[str, Any]
) -> list[Signature]:
    _same_key(obj, master)
    sigs = obj.get("signatures", {}).get(user_id, {})
    out: list[Signature] = []
    for signer_key_id in sigs:
        device_id = signer_key_id.partition(":")[2]
        if signer_key_id == f"ed25519:{key_id}":
            continue  # the master key's own signature came with the key
        devices = await e2e_keys_table.select_device_keys(conn, user_id, [device_id])
        device_key = devices[0].keys.get("keys", {}).get(signer_key_id) if devices else None
        if not isinstance(device_key, str):
            raise MatrixError(Errcode.INVALID_SIGNATURE, f"{signer_key_id} is no device of yours")
        signature = _verify(obj, user_id, device_key, f"master key by {device_id}", signer_key_id)
        out.append(Signature(user_id, key_id, user_id, signer_key_id, signature))
    if not out:
        raise MatrixError(Errcode.INVALID_SIGNATURE, "No signature of one of your devices")
    return out


async def add_cross_signing(
    conn: aiosqlite.Connection, requester: str, device_keys: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """The cross-signing keys of the queried local users (keys of `device_keys`) as `requester`
    may see them, with uploaded signatures merged into them and into `device_keys`."""
    users = list(device_keys)
    found: dict[str, dict[str, Any]] = {"master_keys": {}, "self_signing_keys": {}, "user_signing_keys": {}}
    masters: dict[tuple[str, str], dict[str, Any]] = {}
    for user_id in users:
        keys = await table.select_cross_signing_keys(conn, user_id)
        if "master" in keys:
            found["master_keys"][user_id] = keys["master"]
            masters[(user_id, _public_key(keys["master"], "master_key"))] = keys["master"]
        if "self_signing" in keys:
            found["self_signing_keys"][user_id] = keys["self_signing"]
        if "user_signing" in keys and user_id == requester:
            found["user_signing_keys"][user_id] = keys["user_signing"]
    for sig in await table.select_signatures(conn, users):
        if sig.signer_user_id not in (sig.user_id, requester):
            continue  # another user's signature: only they see it
        target = device_keys[sig.user_id].get(sig.key_id) or masters.get((sig.user_id, sig.key_id))
        if target is not None:
            target.setdefault("signatures", {}).setdefault(sig.signer_user_id, {})[
                sig.signer_key_id
            ] = sig.signature
    return found
