"""Password change and reset, and account deactivation (spec: §Password management, §Account
deactivation).

All run behind UIA (the handler does that part); these functions do the change itself, each in
one transaction so that "password changed" and "other sessions revoked" cannot come apart.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import aiosqlite

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.storage import Storage
from dendrite_lite.storage import accounts as accounts_table
from dendrite_lite.storage import delayed_events as delayed_events_table
from dendrite_lite.storage import devices as devices_table
from dendrite_lite.storage import history as history_table
from dendrite_lite.storage import pushers as pushers_table
from dendrite_lite.storage import threepids as threepids_table
from dendrite_lite.storage.threepids import ValidationSession
from dendrite_lite.users.devices import delete_devices_in
from dendrite_lite.users.passwords import hash_password_async
from dendrite_lite.users.registration import MAX_PASSWORD_LENGTH
from dendrite_lite.users.sessions import Requester

if TYPE_CHECKING:  # rooms.membership imports users.profile: keep users importable on its own
    from dendrite_lite.rooms.membership import MembershipService
    from dendrite_lite.users.threepid_bindings import ThreepidBindings

__all__ = [
    "change_password",
    "deactivate_account",
    "leave_all_rooms",
    "reset_password",
    "reset_password_by_email",
]

log = logging.getLogger(__name__)

# Memberships a leave event ends; a ban is the room's decision and stays.
_LEAVABLE = ("join", "invite", "knock")


async def change_password(
    storage: Storage, requester: Requester, new_password: object, *, logout_devices: bool = True
) -> None:
    """Set the requester's password; with logout_devices (the spec's default) every other
    device and token of the user is revoked, keeping only the requester's own session."""
    password_hash = await _new_password_hash(new_password)

    async def txn(conn: aiosqlite.Connection) -> None:
        await accounts_table.update_password_hash(conn, requester.user_id, password_hash)
        if logout_devices:
            await delete_devices_in(conn, requester.user_id, except_device_id=requester.device_id)
            await devices_table.delete_tokens_for_user(
                conn, requester.user_id, except_token_hash=requester.token_hash
            )

    await storage.db.write(txn)


async def reset_password(
    storage: Storage, user_id: str, new_password: object, *, logout_devices: bool = True
) -> None:
    """A server admin sets a user's password (Synapse's reset_password admin API); with
    logout_devices every device and token of the user goes."""
    password_hash = await _new_password_hash(new_password)
    await storage.db.write(
        lambda conn: _set_password_in(conn, user_id, password_hash, logout_devices)
    )


async def reset_password_by_email(
    storage: Storage, threepid: ValidationSession, new_password: object, *,
    logout_devices: bool = True,
) -> str:
    """A forgotten password reset, proven by the validated email session `threepid` (UIA
    m.login.email.identity): the password of the account with that address is set, and with
    logout_devices every device of it goes. The session is used up. Returns the user id;
    400 M_THREEPID_NOT_FOUND when no active account has the address (any more)."""
    password_hash = await _new_password_hash(new_password)

    async def txn(conn: aiosqlite.Connection) -> str:
        user_id = await threepids_table.select_user_id_for_threepid(
            conn, threepid.medium, threepid.address
        )
        account = await accounts_table.select_account(conn, user_id) if user_id else None
        if user_id is None or account is None or account.deactivated:
            raise MatrixError(Errcode.THREEPID_NOT_FOUND, "No account has this email address")
        await _set_password_in(conn, user_id, password_hash, logout_devices)
        await threepids_table.delete_validation_session(conn, threepid.sid)
        return user_id

    return await storage.db.write(txn)


async def _set_password_in(
    conn: aiosqlite.Connection, user_id: str, password_hash: str, logout_devices: bool
) -> None:
    await accounts_table.update_password_hash(conn, user_id, password_hash)
    if logout_devices:
        await delete_devices_in(conn, user_id)
        await devices_table.delete_tokens_for_user(conn, user_id)


async def _new_password_hash(new_password: object) -> str:
    if not isinstance(new_password, str) or not new_password:
        raise MatrixError(Errcode.MISSING_PARAM, "new_password must be a non-empty string")
    if len(new_password) > MAX_PASSWORD_LENGTH:
        raise MatrixError(
            Errcode.INVALID_PARAM, f"password may be at most {MAX_PASSWORD_LENGTH} characters"
        )
    return await hash_password_async(new_password)


async def deactivate_account(
    storage: Storage,
    user_id: str,
    *,
    membership: MembershipService | None = None,
    erase: bool = False,
    bindings: ThreepidBindings | None = None,
    id_server: str | None = None,
) -> str:
    """Deactivate: the account can never log in again, its profile is cleared, every device
    and token is revoked, and (with `membership`) it leaves every room it is in or invited to.
    Its third-party ids go: (with `bindings`) unbound at the identity servers first, at
    `id_server` if the client named one, then removed from the account. Returns the
    id_server_unbind_result ("success" or "no-support", users/threepid_bindings.py).

    The password hash is kept so that a later login with the right password is told
    M_USER_DEACTIVATED instead of a bare M_FORBIDDEN; it can never log in again either way.
    Everything local happens in one transaction first, so the user cannot act (or be handed a
    new session) while the leaves go out. Its pushers go in that transaction too, so push
    gateways stop waking its phones. The user directory reads room membership, so the leaves
    take the user out of it.

    `erase` (account_deactivation.yaml) asks for the content to be erased "as much as
    possible": the profile is cleared in any case, the leave events carry nothing about the
    user, and the erasure is recorded so that other servers get the user's events redacted
    from then on (federation/server_visibility.py), as from Synapse. TODO(erase): serve them
    redacted to local users who join later too, and drop the account data without moving the
    account data stream backwards.
    """
    unbound = await bindings.unbind_all(user_id, id_server) if bindings is not None else "success"

    async def txn(conn: aiosqlite.Connection) -> None:
        await accounts_table.update_account_deactivated(conn, user_id, True)
        # Display name and avatar go too: other users' clients show the profile of the
        # members they list, and a deactivated user is nobody's to show (§Account deactivation).
        await accounts_table.update_displayname(conn, user_id, None)
        await accounts_table.update_avatar_url(conn, user_id, None)
        await delete_devices_in(conn, user_id)
        await devices_table.delete_tokens_for_user(conn, user_id)
        await pushers_table.delete_pushers(conn, user_id)
        await delayed_events_table.delete_user_delayed_events(conn, user_id)  # MSC4140
        await threepids_table.delete_all_user_threepids(conn, user_id)
        if erase:
            await accounts_table.insert_erased_user(conn, user_id)

    await storage.db.write(txn)
    if membership is not None:
        await leave_all_rooms(storage, membership, user_id)
    return unbound


async def leave_all_rooms(storage: Storage, membership: MembershipService, user_id: str) -> list[str]:
    """Leave every room `user_id` is joined to, invited to or knocking at (a leave event each,
    through the room pipeline, or over federation for an invite to a room this server is not
    in). Returns the rooms left. A room that refuses (or a remote server that cannot be
    reached) is logged and skipped: one room must not keep the account in all the others."""
    memberships = await storage.db.read(
        lambda c: history_table.select_current_memberships(c, user_id)
    )
    left = []
    for room_id, (current, _, _) in sorted(memberships.items()):
        if current not in _LEAVABLE:
            continue
        try:
            await membership.leave(user_id, room_id)
        except MatrixError as e:
            log.warning("deactivated %s could not leave %s: %s", user_id, room_id, e)
            continue
        left.append(room_id)
    return left
