"""The Users screen: the server's accounts through Synapse's admin API (v2/users), with create,
deactivate, reset password, admin flag and each user's devices."""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote

from textual import work
from textual.binding import Binding, BindingType

from dendrite_lite.tui.admin_client import AdminClient
from dendrite_lite.tui.widgets import (
    InputDialog,
    ListingScreen,
    Row,
    table_time,
)

__all__ = ["DevicesScreen", "UsersScreen"]

USERS = "/_synapse/admin/v2/users"
V1 = "/_synapse/admin/v1"
# One page holds every account of a small server; the heading shows how many are listed.
PAGE = 500


def user_path(user_id: str, *rest: str) -> str:
    return "/".join([USERS, quote(user_id, safe=""), *rest])


def _flag(value: Any) -> str:
    return "yes" if value else ""


class UsersScreen(ListingScreen):
    HEADING = "Users"
    COLUMNS = ("User ID", "Display name", "Admin", "Deactivated", "Created (UTC)")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "create", "New"),
        Binding("x", "deactivate", "Deactivate"),
        Binding("w", "reset_password", "Password"),
        Binding("a", "toggle_admin", "Admin"),
        Binding("v", "devices", "Devices"),
    ]

    async def fetch(self, term: str) -> list[Row]:
        params = {"limit": str(PAGE), "deactivated": "true", "guests": "true"}
        if term:
            params["name"] = term
        answer = await self.client.get(USERS, **params)
        self.total = answer.get("total")
        return [
            Row(
                u["name"],
                (
                    u["name"],
                    u.get("displayname") or "",
                    _flag(u.get("admin")),
                    _flag(u.get("deactivated")),
                    table_time(u.get("creation_ts")),
                ),
                u,
            )
            for u in answer.get("users", [])
        ]

    def open_row(self, row: Row) -> None:
        self.app.push_screen(DevicesScreen(self.client, row.key))

    @work
    async def action_create(self) -> None:
        user_id = await self.app.push_screen_wait(
            InputDialog("New user: the full user ID", placeholder="@alice:example.org")
        )
        if user_id is None:
            return
        if not user_id.startswith("@") or ":" not in user_id:
            self.notify(
                f"{user_id!r} is not a user ID like @alice:example.org",
                severity="error",
            )
            return
        password = await self.app.push_screen_wait(
            InputDialog(f"Password for {user_id}", password=True)
        )
        if password is not None:
            await self.change(
                self.client.put(user_path(user_id), {"password": password}),
                f"Created {user_id}",
            )

    @work
    async def action_deactivate(self) -> None:
        row = self.selected()
        question = "Deactivate {}? They are logged out and cannot log in again."
        if row is None or not await self.confirmed(question.format(row.key)):
            return
        path = f"{V1}/deactivate/{quote(row.key, safe='')}"
        await self.change(
            self.client.post(path, {"erase": False}), f"Deactivated {row.key}"
        )

    @work
    async def action_reset_password(self) -> None:
        row = self.selected()
        if row is None:
            return
        password = await self.app.push_screen_wait(
            InputDialog(
                f"New password for {row.key} (their devices are logged out)",
                password=True,
            )
        )
        if password is None:
            return
        path = f"{V1}/reset_password/{quote(row.key, safe='')}"
        body = {"new_password": password, "logout_devices": True}
        await self.change(self.client.post(path, body), f"Password of {row.key} reset")

    @work
    async def action_toggle_admin(self) -> None:
        row = self.selected()
        if row is None:
            return
        admin = not row.data.get("admin")
        path = f"{V1}/users/{quote(row.key, safe='')}/admin"
        done = f"{row.key} is {'now' if admin else 'no longer'} a server admin"
        await self.change(self.client.put(path, {"admin": admin}), done)

    def action_devices(self) -> None:
        row = self.selected()
        if row is not None:
            self.open_row(row)


class DevicesScreen(ListingScreen):
    """One user's devices; delete logs one out."""

    COLUMNS = ("Device ID", "Display name", "Last seen IP", "Last seen (UTC)")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("delete,x", "delete", "Delete"),
    ]

    def __init__(self, client: AdminClient, user_id: str) -> None:
        super().__init__(client)
        self.user_id = user_id
        self.heading = f"Devices of {user_id}"

    async def fetch(self, term: str) -> list[Row]:
        answer = await self.client.get(user_path(self.user_id, "devices"))
        rows = [
            Row(
                d["device_id"],
                (
                    d["device_id"],
                    d.get("display_name") or "",
                    d.get("last_seen_ip") or "",
                    table_time(d.get("last_seen_ts")),
                ),
                d,
            )
            for d in answer.get("devices", [])
        ]
        # The API has no filter for devices: the search box filters what is shown.
        return [r for r in rows if term.lower() in " ".join(r.cells).lower()]

    @work
    async def action_delete(self) -> None:
        row = self.selected()
        if row is None or not await self.confirmed(
            f"Delete device {row.key} of {self.user_id}?"
        ):
            return
        path = user_path(self.user_id, "devices", quote(row.key, safe=""))
        await self.change(self.client.delete(path), f"Deleted device {row.key}")
