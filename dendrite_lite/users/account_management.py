"""Password change and account deactivation (spec: §Password management, §Account deactivation).

Both run behind UIA (the handler does that part); these functions do the change itself, each in
one transaction so that "password changed" and "other sessions revoked" cannot come apart.
"""

from __future__ import annotations

import aiosqlite

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.storage import Storage
from dendrite_lite.storage import accounts as accounts_table
from dendrite_lite.storage import devices as devices_table
from dendrite_lite.users.devices import delete_devices_in
from dendrite_lite.users.passwords import hash_password_async
from dendrite_lite.users.registration import MAX_PASSWORD_LENGTH
from dendrite_lite.users.sessions import Requester

__all__ = ["change_password", "deactivate_account"]


async def change_password(
    storage: Storage, requester: Requester, new_password: object, *, logout_devices: bool = True
) -> None:
    """Set the requester's password; with logout_devices (the spec's default) every other
    device and token of the user is revoked, keeping only the requester's own session."""
    if not isinstance(new_password, str) or not new_password:
        raise MatrixError(Errcode.MISSING_PARAM, "new_password must be a non-empty string")
    if len(new_password) > MAX_PASSWORD_LENGTH:
        raise MatrixError(
            Errcode.INVALID_PARAM, f"password may be at most {MAX_PASSWORD_LENGTH} characters"
        )
    password_hash = await hash_password_async(new_password)

    async def txn(conn: aiosqlite.Connection) -> None:
        await accounts_table.update_password_hash(conn, requester.user_id, password_hash)
        if logout_devices:
            await delete_devices_in(conn, requester.user_id, except_device_id=requester.device_id)
            await devices_table.delete_tokens_for_user(
                conn, requester.user_id, except_token_hash=requester.token_hash
            )

    await storage.db.write(txn)


async def deactivate_account(storage: Storage, user_id: str) -> None:
    """Mark the account deactivated and revoke every device and token.

    The password hash is kept so that a later login with the right password is told
    M_USER_DEACTIVATED instead of a bare M_FORBIDDEN; it can never log in again either way.
    TODO(rooms): leave every room and clear the profile once the room service exists.
    """

    async def txn(conn: aiosqlite.Connection) -> None:
        await accounts_table.update_account_deactivated(conn, user_id, True)
        await delete_devices_in(conn, user_id)
        await devices_table.delete_tokens_for_user(conn, user_id)

    await storage.db.write(txn)
