"""Every admin blueprint, in one list: the client listener serves them to server admins (when
`admin.client_api` is on) and the admin unix socket serves them to whoever can open the socket."""

from __future__ import annotations

from quart import Blueprint

from dendrite_lite.api.admin import (
    destinations,
    event_reports,
    federation_check,
    server_status,
    media,
    registration_tokens,
    server_info,
    user_devices,
    users,
)
from dendrite_lite.api.admin import purge_history, room_deletion, rooms

__all__ = ["ADMIN_BLUEPRINTS"]

ADMIN_BLUEPRINTS: tuple[Blueprint, ...] = (
    registration_tokens.bp,
    rooms.bp, room_deletion.bp, purge_history.bp,
    event_reports.bp,
    server_status.bp,
    federation_check.bp,
    media.bp,
    destinations.bp,
    server_info.bp,
    users.bp,
    user_devices.bp,
)
