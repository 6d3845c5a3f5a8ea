"""Accounts of application services: `m.login.application_service` registration and login,
the identity an as_token asserts, and each AS's sender user.

Spec: application-service-api §Client-Server API Extensions (identity assertion, server admin
style permissions). A user in an AS's namespace is created without a password: only the AS
acts for it (with its as_token and ?user_id=), or logs in as it.
"""

from __future__ import annotations

from typing import Any

import aiosqlite

from dendrite_lite.appservice.registration import Registration
from dendrite_lite.appservice.registry import AppServices
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.storage import Storage
from dendrite_lite.storage import accounts as accounts_table
from dendrite_lite.storage import device_lists as device_lists_table
from dendrite_lite.storage import devices as devices_table
from dendrite_lite.users.accounts import (
    default_displayname,
    make_user_id,
    validate_user_id,
)
from dendrite_lite.users.sessions import (
    Requester,
    Session,
    insert_session,
    now_ms,
    user_id_from_identifier,
    validate_device_id,
)

__all__ = [
    "APPSERVICE_LOGIN",
    "appservice_requester",
    "create_device",
    "ensure_sender_accounts",
    "login_as_appservice",
    "refuse_exclusive_alias",
    "refuse_exclusive_username",
    "register_as_appservice",
]

APPSERVICE_LOGIN = "m.login.application_service"


async def ensure_sender_accounts(storage: Storage, appservices: AppServices) -> None:
    """Every AS's sender (@sender_localpart) exists, so it can join rooms and own aliases with
    no registration step (SyTest's "AS user (not ghost) can join room without registering")."""
    senders = sorted(appservices.sender_ids())
    if not senders:
        return
    now = now_ms()

    async def write(conn: aiosqlite.Connection) -> None:
        for user_id in senders:
            await accounts_table.insert_account(
                conn, user_id=user_id, password_hash=None, created_ts=now,
                displayname=default_displayname(user_id),
            )

    await storage.db.write(write)


async def appservice_requester(
    storage: Storage,
    appservices: AppServices,
    reg: Registration,
    user_id: str | None,
    device_id: str | None,
) -> Requester:
    """Who an as_token request acts as: ?user_id= (in the AS's namespace, and registered), else
    the AS's sender; with ?device_id= (MSC4190, spec v1.17), a device of that user."""
    acting = user_id or reg.sender(appservices.server_name)
    if not appservices.may_act_as(reg, acting):
        raise MatrixError(
            Errcode.EXCLUSIVE, f"{acting} is not in the namespace of appservice {reg.id}",
            status=403,
        )

    async def read(conn: aiosqlite.Connection) -> tuple[Any, Any]:
        account = await accounts_table.select_account(conn, acting)
        device = (
            await devices_table.select_device(conn, acting, device_id) if device_id else None
        )
        return account, device

    account, device = await storage.db.read(read)
    if account is None or account.deactivated:
        raise MatrixError(Errcode.FORBIDDEN, f"Application service has not registered {acting}")
    if device_id and device is None:
        raise MatrixError(Errcode.UNKNOWN_DEVICE, f"{acting} has no device {device_id}")
    return Requester(
        acting, device_id or "", account.is_admin, False, "", app_service=reg.id,
    )


def refuse_exclusive_username(appservices: AppServices, username: str) -> None:
    """A user registering `username` themselves: 400 M_EXCLUSIVE when an AS holds it
    exclusively."""
    user_id = make_user_id(username.lower(), appservices.server_name)
    if not appservices.may_register(None, user_id):
        raise MatrixError(
            Errcode.EXCLUSIVE, f"{user_id} is reserved by an application service"
        )


def refuse_exclusive_alias(appservices: AppServices, alias: str, as_id: str | None) -> None:
    """Creating `alias`: an AS only within its alias namespace, a user only outside every
    exclusive one (400 M_EXCLUSIVE)."""
    if as_id is not None:
        reg = appservices.by_id(as_id)
        if reg is not None and not reg.matches("aliases", alias):
            raise MatrixError(Errcode.EXCLUSIVE, f"{alias} is not in the namespace of {as_id}")
        return
    if appservices.exclusive_owner("aliases", alias) is not None:
        raise MatrixError(Errcode.EXCLUSIVE, f"{alias} is reserved by an application service")


async def register_as_appservice(
    storage: Storage, appservices: AppServices, reg: Registration, body: dict[str, Any],
    *, ip: str | None,
) -> tuple[str, Session | None]:
    """POST /register with type m.login.application_service: a passwordless user in the AS's
    namespace (400 M_EXCLUSIVE outside it, M_USER_IN_USE if taken)."""
    username = body.get("username")
    if not isinstance(username, str) or not username:
        raise MatrixError(Errcode.MISSING_PARAM, "username is required")
    user_id = make_user_id(username.lower(), appservices.server_name)
    validate_user_id(user_id)
    if not appservices.may_act_as(reg, user_id):
        raise MatrixError(Errcode.EXCLUSIVE, f"{user_id} is not in the namespace of {reg.id}")
    if body.get("device_id") is not None:
        validate_device_id(body["device_id"])
    inhibit_login = body.get("inhibit_login") is True
    if reg.device_management and not inhibit_login:
        raise MatrixError(
            Errcode.APPSERVICE_LOGIN_UNSUPPORTED,
            "This appservice manages its users' devices itself (MSC4190): set inhibit_login",
        )
    now = now_ms()

    async def write(conn: aiosqlite.Connection) -> Session | None:
        created = await accounts_table.insert_account(
            conn, user_id=user_id, password_hash=None, created_ts=now,
            displayname=default_displayname(user_id),
        )
        if not created:
            raise MatrixError(Errcode.USER_IN_USE, "User ID already taken.")
        return None if inhibit_login else await _new_session(conn, user_id, body, ip, now)

    return user_id, await storage.db.write(write)


async def login_as_appservice(
    storage: Storage, appservices: AppServices, reg: Registration, body: dict[str, Any],
    *, ip: str | None,
) -> Session:
    """POST /login with type m.login.application_service: a session (device) for a registered
    user in the AS's namespace, no password (400 M_EXCLUSIVE outside it)."""
    if reg.device_management:
        raise MatrixError(
            Errcode.APPSERVICE_LOGIN_UNSUPPORTED,
            "This appservice manages its users' devices itself (MSC4190): create them with"
            " PUT /devices/{deviceId}",
        )
    user_id = user_id_from_identifier(body, appservices.server_name)
    if not appservices.may_act_as(reg, user_id):
        raise MatrixError(Errcode.EXCLUSIVE, f"{user_id} is not in the namespace of {reg.id}")
    if body.get("device_id") is not None:
        validate_device_id(body["device_id"])
    now = now_ms()

    async def write(conn: aiosqlite.Connection) -> Session:
        account = await accounts_table.select_account(conn, user_id)
        if account is None or account.deactivated:
            raise MatrixError(Errcode.FORBIDDEN, f"{user_id} is not registered")
        return await _new_session(conn, user_id, body, ip, now)

    return await storage.db.write(write)


async def create_device(storage: Storage, user_id: str, device_id: str, display_name: Any) -> bool:
    """PUT /devices/{deviceId} by an application service (MSC4190, spec v1.17): the device is
    created when it does not exist (True), with no access token: the AS acts for it with
    ?device_id=. The creation enters the device list stream like a login's."""
    validate_device_id(device_id)
    name = display_name if isinstance(display_name, str) else None
    now = now_ms()

    async def write(conn: aiosqlite.Connection) -> bool:
        if not await devices_table.insert_device(
            conn, user_id=user_id, device_id=device_id, created_ts=now, display_name=name
        ):
            return False
        await device_lists_table.insert_device_list_change(conn, user_id, device_id)
        return True

    return await storage.db.write(write)


async def _new_session(
    conn: aiosqlite.Connection, user_id: str, body: dict[str, Any], ip: str | None, now: int
) -> Session:
    display_name = body.get("initial_device_display_name")
    return await insert_session(
        conn, user_id, device_id=body.get("device_id"),
        display_name=display_name if isinstance(display_name, str) else None,
        ip=ip, with_refresh=body.get("refresh_token") is True, now=now,
    )
