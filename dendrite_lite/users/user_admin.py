"""Server admins' view and control of local users: Synapse's user admin API
(docs/admin_api/user_admin_api.md), which admin tools such as synadm drive.

Everything here acts on another user's behalf with no check of its own: the handlers let only
server admins (or the admin socket) in. Shapes follow Synapse's, including the fields we have no
use for (threepids, external_ids, consent_*) so that tools reading them find them; accounts are
never locked or suspended here, so those are always false.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiosqlite

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.events.ids import is_valid_user_id, server_name_of
from dendrite_lite.rooms.pipeline import RoomPipeline
from dendrite_lite.storage import Storage
from dendrite_lite.storage import accounts as accounts_table
from dendrite_lite.storage import accounts_admin as admin_table
from dendrite_lite.storage import dehydrated_devices as dehydrated_table
from dendrite_lite.storage import device_lists as device_lists_table
from dendrite_lite.storage import devices as devices_table
from dendrite_lite.storage import state as state_table
from dendrite_lite.storage.accounts import Account
from dendrite_lite.storage.accounts_admin import (
    USER_ORDER_COLUMNS,
    AdminUser,
    UserFilter,
)
from dendrite_lite.storage.devices import Device
from dendrite_lite.users import devices as devices_service
from dendrite_lite.users.account_management import deactivate_account, reset_password
from dendrite_lite.users.accounts import create_account
from dendrite_lite.users.profile import set_profile_field
from dendrite_lite.users.registration import MAX_PASSWORD_LENGTH

if (
    TYPE_CHECKING
):  # rooms.membership imports users.profile: keep users importable on its own
    from dendrite_lite.e2ee.device_lists import DeviceListService
    from dendrite_lite.rooms.membership import MembershipService
    from dendrite_lite.users.threepid_bindings import ThreepidBindings

__all__ = [
    "USER_TYPES",
    "UserAdmin",
    "UserListQuery",
    "UserUpdate",
    "admin_device_json",
    "parse_user_update",
]

# Synapse's user types (UserTypes.ALL_USER_TYPES); None is a regular user.
USER_TYPES = ("bot", "support")


@dataclass(frozen=True, slots=True)
class UserListQuery:
    filter: UserFilter = field(default_factory=UserFilter)
    order_by: str = "name"
    backwards: bool = False
    offset: int = 0
    limit: int = 100

    def __post_init__(self) -> None:
        if self.order_by not in USER_ORDER_COLUMNS:
            raise MatrixError(
                Errcode.INVALID_PARAM,
                f"order_by must be one of {', '.join(USER_ORDER_COLUMNS)}",
            )
        if self.offset < 0:
            raise MatrixError(
                Errcode.INVALID_PARAM, "from must be a non-negative integer"
            )
        if self.limit < 0:
            raise MatrixError(
                Errcode.INVALID_PARAM, "limit must be a non-negative integer"
            )


_UNSET: Any = object()


@dataclass(frozen=True, slots=True)
class UserUpdate:
    """PUT /_synapse/admin/v2/users/{userId}: what the body sets; None leaves it as it is
    (user_type: _UNSET leaves it, None makes the user regular)."""

    password: str | None = None
    logout_devices: bool = True
    displayname: str | None = None  # "" removes it
    avatar_url: str | None = None  # "" removes it
    admin: bool | None = None
    deactivated: bool | None = None
    user_type: Any = _UNSET


def _typed(body: dict[str, Any], key: str, kind: type, what: str) -> Any:
    value = body.get(key)
    if value is not None and not isinstance(value, kind):
        raise MatrixError(Errcode.INVALID_PARAM, f"{key} must be {what}")
    return value


def parse_user_update(body: dict[str, Any]) -> UserUpdate:
    """Validate the body of PUT /_synapse/admin/v2/users/{userId} (400 M_INVALID_PARAM)."""
    password = _typed(body, "password", str, "a string")
    if password is not None and len(password) > MAX_PASSWORD_LENGTH:
        raise MatrixError(Errcode.INVALID_PARAM, "Invalid password")
    logout = _typed(body, "logout_devices", bool, "a boolean")
    user_type = body.get("user_type", _UNSET)
    if (
        user_type is not _UNSET
        and user_type is not None
        and user_type not in USER_TYPES
    ):
        raise MatrixError(Errcode.INVALID_PARAM, "Invalid user type")
    # NOTSPEC: no third-party ids, SSO or account locking here; asking for none is fine.
    for key in ("threepids", "external_ids"):
        if _typed(body, key, list, "a list"):
            raise MatrixError(
                Errcode.INVALID_PARAM, f"{key} are not supported by this server"
            )
    if _typed(body, "locked", bool, "a boolean"):
        raise MatrixError(Errcode.INVALID_PARAM, "Locking accounts is not supported")
    return UserUpdate(
        password=password,
        logout_devices=True if logout is None else logout,
        displayname=_typed(body, "displayname", str, "a string"),
        avatar_url=_typed(body, "avatar_url", str, "a string"),
        admin=_typed(body, "admin", bool, "a boolean"),
        deactivated=_typed(body, "deactivated", bool, "a boolean"),
        user_type=user_type,
    )


def _list_json(user: AdminUser) -> dict[str, Any]:
    a = user.account
    return {
        "name": a.user_id,
        "is_guest": a.is_guest,
        "admin": a.is_admin,
        "user_type": a.user_type,
        "deactivated": a.deactivated,
        "erased": user.erased,
        "shadow_banned": a.shadow_banned,
        "displayname": a.displayname,
        "avatar_url": a.avatar_url,
        "creation_ts": a.created_ts,
        "last_seen_ts": user.last_seen_ts,
        "locked": False,
    }


def _details_json(user: AdminUser) -> dict[str, Any]:
    return {
        **_list_json(user),
        "threepids": [],
        "external_ids": [],
        "appservice_id": None,
        "consent_server_notice_sent": None,
        "consent_version": None,
        "consent_ts": None,
        "suspended": False,
    }


def admin_device_json(device: Device, *, dehydrated: bool) -> dict[str, Any]:
    """A device as Synapse's admin API shows it: the client API's fields, its user agent,
    owner and whether it is the user's dehydrated device."""
    return {
        **devices_service.device_json(device),
        "last_seen_user_agent": device.last_seen_user_agent,
        "user_id": device.user_id,
        "dehydrated": dehydrated,
    }


@dataclass(frozen=True, slots=True)
class UserAdmin:
    storage: Storage
    pipeline: RoomPipeline
    server_name: str
    membership: MembershipService
    # Told of every change of a user's devices, so their room-mates' /sync hears of it.
    device_lists: DeviceListService
    # Unbinds a deactivated user's third-party ids at identity servers.
    bindings: ThreepidBindings | None = None

    def require_local(self, user_id: str, what: str = "look up") -> None:
        """400 M_INVALID_PARAM unless user_id is a well-formed id of one of our users."""
        if not is_valid_user_id(user_id):
            raise MatrixError(
                Errcode.INVALID_PARAM, f"{user_id!r} is not a valid user id"
            )
        if server_name_of(user_id) != self.server_name:
            raise MatrixError(Errcode.INVALID_PARAM, f"Can only {what} local users")

    async def account(self, user_id: str, what: str = "look up") -> Account:
        """The local account; 400 for another server's user, 404 M_NOT_FOUND if unknown."""
        self.require_local(user_id, what)
        account = await self.storage.db.read(
            lambda c: accounts_table.select_account(c, user_id)
        )
        if account is None:
            raise MatrixError(Errcode.NOT_FOUND, "User not found")
        return account

    async def list_users(self, query: UserListQuery) -> dict[str, Any]:
        """GET /_synapse/admin/v2/users: a page, the total and, when more follow, next_token
        (the offset of the next page, as a string)."""
        users, total = await self.storage.db.read(
            lambda c: admin_table.select_admin_users(
                c,
                query.filter,
                order_by=query.order_by,
                backwards=query.backwards,
                offset=query.offset,
                limit=query.limit,
            )
        )
        body: dict[str, Any] = {"users": [_list_json(u) for u in users], "total": total}
        if query.offset + len(users) < total and users:
            body["next_token"] = str(query.offset + len(users))
        return body

    async def details(self, user_id: str) -> dict[str, Any]:
        """GET /_synapse/admin/v2/users/{userId}."""
        await self.account(user_id)
        user = await self.storage.db.read(
            lambda c: admin_table.select_admin_user(c, user_id)
        )
        assert user is not None  # accounts are never deleted
        return _details_json(user)

    async def upsert(
        self, user_id: str, update: UserUpdate, *, by: str
    ) -> tuple[bool, dict[str, Any]]:
        """PUT /_synapse/admin/v2/users/{userId}: create the user or change it; (whether it
        was created, its details after). `by` is the requesting admin ("" on the admin
        socket), who may not demote themselves."""
        self.require_local(user_id, "create or modify")
        account = await self.storage.db.read(
            lambda c: accounts_table.select_account(c, user_id)
        )
        if account is None:
            await self._create(user_id, update)
        else:
            await self._modify(account, update, by=by)
        return account is None, await self.details(user_id)

    async def _create(self, user_id: str, update: UserUpdate) -> None:
        await create_account(
            self.storage, user_id, update.password, admin=bool(update.admin)
        )
        # Synapse names a new user after its localpart unless told otherwise.
        displayname = update.displayname
        if displayname is None:
            displayname = user_id[1:].split(":", 1)[0]

        async def txn(conn: aiosqlite.Connection) -> None:
            await accounts_table.update_displayname(conn, user_id, displayname or None)
            await accounts_table.update_avatar_url(
                conn, user_id, update.avatar_url or None
            )
            if update.user_type is not _UNSET:
                await accounts_table.update_user_type(conn, user_id, update.user_type)

        await self.storage.db.write(txn)
        if update.deactivated:
            await deactivate_account(self.storage, user_id)

    async def _modify(self, account: Account, update: UserUpdate, *, by: str) -> None:
        user_id = account.user_id
        if update.admin is False and user_id == by:
            raise MatrixError(Errcode.INVALID_PARAM, "You may not demote yourself.")
        reactivate = update.deactivated is False and account.deactivated
        if reactivate and update.password is None:
            # The old password of a deactivated account must not come back by itself.
            raise MatrixError(
                Errcode.MISSING_PARAM,
                "Must provide a password to re-activate an account.",
            )
        if reactivate:
            await self.storage.db.write(lambda c: _reactivate(c, user_id))
        if update.password is not None:
            await self.reset_password(
                user_id, update.password, logout_devices=update.logout_devices
            )
        active = not account.deactivated or reactivate
        for key in ("displayname", "avatar_url"):
            value = getattr(update, key)
            if value is not None:
                await self._set_profile(user_id, key, value or None, active=active)
        if update.admin is not None:
            admin = update.admin
            await self.storage.db.write(
                lambda c: accounts_table.update_account_admin(c, user_id, admin)
            )
        if update.user_type is not _UNSET:
            user_type = update.user_type
            await self.storage.db.write(
                lambda c: accounts_table.update_user_type(c, user_id, user_type)
            )
        if update.deactivated and not account.deactivated:
            await self.deactivate(user_id, erase=False)

    async def _set_profile(
        self, user_id: str, key: str, value: str | None, *, active: bool
    ) -> None:
        if active:
            # As the user would: stored, then sent into every room they are joined to.
            await set_profile_field(
                self.storage,
                self.pipeline,
                requester=user_id,
                user_id=user_id,
                key=key,
                value=value,
            )
            return
        update = (
            accounts_table.update_displayname
            if key == "displayname"
            else accounts_table.update_avatar_url
        )
        await self.storage.db.write(lambda c: update(c, user_id, value))

    async def set_admin(self, user_id: str, admin: bool, *, by: str) -> None:
        """PUT /_synapse/admin/v1/users/{userId}/admin."""
        await self.account(user_id, "make admins of")
        if not admin and user_id == by:
            raise MatrixError(Errcode.INVALID_PARAM, "You may not demote yourself.")
        await self.storage.db.write(
            lambda c: accounts_table.update_account_admin(c, user_id, admin)
        )

    async def deactivate(self, user_id: str, *, erase: bool) -> str:
        """POST /_synapse/admin/v1/deactivate/{userId}: as the user deactivating themselves
        (users/account_management.py), erasure included. Returns id_server_unbind_result."""
        await self.account(user_id, "deactivate")
        unbound = await deactivate_account(
            self.storage, user_id, membership=self.membership, erase=erase,
            bindings=self.bindings,
        )
        await self.device_lists.changed(user_id)
        return unbound

    async def reset_password(
        self, user_id: str, password: object, *, logout_devices: bool
    ) -> None:
        """POST /_synapse/admin/v1/reset_password/{userId}."""
        await self.account(user_id, "reset the password of")
        await reset_password(
            self.storage, user_id, password, logout_devices=logout_devices
        )
        if logout_devices:
            await self.device_lists.changed(user_id)

    async def set_shadow_banned(self, user_id: str, banned: bool) -> None:
        """POST (True) / DELETE (False) /_synapse/admin/v1/users/{userId}/shadow_ban."""
        await self.account(user_id, "shadow-ban")
        await self.storage.db.write(
            lambda c: accounts_table.update_shadow_banned(c, user_id, banned)
        )

    async def joined_rooms(self, user_id: str) -> list[str]:
        """GET /_synapse/admin/v1/users/{userId}/joined_rooms: for another server's user, the
        rooms here that they are joined to (as Synapse); for ours, 404 if unknown."""
        if not is_valid_user_id(user_id):
            raise MatrixError(
                Errcode.INVALID_PARAM, f"{user_id!r} is not a valid user id"
            )
        if server_name_of(user_id) == self.server_name:
            await self.account(user_id)
        return await self.storage.db.read(
            lambda c: state_table.select_room_ids_for_user(c, user_id, "join")
        )

    async def whois(self, user_id: str) -> dict[str, Any]:
        """GET /_synapse/admin/v1/whois/{userId}: the client API's whois body."""
        await self.account(user_id, "whois")
        return {
            "user_id": user_id,
            "devices": await devices_service.whois(self.storage, user_id),
        }

    async def devices(self, user_id: str) -> list[dict[str, Any]]:
        """GET /_synapse/admin/v2/users/{userId}/devices."""
        await self.account(user_id)
        found = await devices_service.list_devices(self.storage, user_id)
        dehydrated = await self._dehydrated_device_id(user_id)
        return [
            admin_device_json(d, dehydrated=d.device_id == dehydrated) for d in found
        ]

    async def device(self, user_id: str, device_id: str) -> dict[str, Any]:
        """GET /_synapse/admin/v2/users/{userId}/devices/{deviceId}."""
        await self.account(user_id)
        found = await devices_service.get_device(self.storage, user_id, device_id)
        dehydrated = await self._dehydrated_device_id(user_id)
        return admin_device_json(found, dehydrated=device_id == dehydrated)

    async def _dehydrated_device_id(self, user_id: str) -> str | None:
        mark = await self.storage.db.read(
            lambda c: dehydrated_table.select_dehydrated_device(c, user_id)
        )
        return mark.device_id if mark is not None else None

    async def create_device(self, user_id: str, device_id: str) -> bool:
        """POST /_synapse/admin/v2/users/{userId}/devices: a device without a token (nothing if
        it exists). True when it was created: the user's device list changed."""
        await self.account(user_id)
        now = int(time.time() * 1000)

        async def txn(conn: aiosqlite.Connection) -> bool:
            created = await devices_table.insert_device(
                conn, user_id=user_id, device_id=device_id, created_ts=now
            )
            if created:
                await device_lists_table.insert_device_list_change(
                    conn, user_id, device_id
                )
            return created

        created = await self.storage.db.write(txn)
        if created:
            await self.device_lists.changed(user_id)
        return created

    async def rename_device(
        self, user_id: str, device_id: str, display_name: str | None
    ) -> None:
        """PUT /_synapse/admin/v2/users/{userId}/devices/{deviceId}."""
        await self.account(user_id)
        if await devices_service.rename_device(
            self.storage, user_id, device_id, display_name
        ):
            await self.device_lists.changed(user_id)

    async def delete_devices(self, user_id: str, device_ids: list[str]) -> None:
        """DELETE .../devices/{deviceId} and POST .../delete_devices: unknown ids are skipped,
        as by the client API."""
        await self.account(user_id)
        if await devices_service.delete_devices(self.storage, user_id, device_ids):
            await self.device_lists.changed(user_id)


async def _reactivate(conn: aiosqlite.Connection, user_id: str) -> None:
    await accounts_table.update_account_deactivated(conn, user_id, False)
    await accounts_table.delete_erased_user(conn, user_id)
