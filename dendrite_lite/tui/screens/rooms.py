"""The Rooms screen: the server's rooms through Synapse's admin API (v1/rooms), each with its
members, state and recent events; block/unblock and delete, both after a confirmation."""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Static, TabbedContent, TabPane

from dendrite_lite.tui.admin_client import AdminClient
from dendrite_lite.tui.widgets import (
    KeysFooter,
    ListingScreen,
    Row,
    admin_call,
    table_time,
)

__all__ = ["RoomDetailsScreen", "RoomsScreen"]

ROOMS = "/_synapse/admin/v1/rooms"
PAGE = 500
RECENT_EVENTS = 50


def room_path(room_id: str, *rest: str) -> str:
    return "/".join([ROOMS, quote(room_id, safe=""), *rest])


class RoomsScreen(ListingScreen):
    HEADING = "Rooms"
    COLUMNS = ("Name", "Alias", "Members", "Local", "Room ID")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select", "Details", priority=True),
        Binding("b", "block", "Block"),
        Binding("D", "delete", "Delete"),
    ]

    async def fetch(self, term: str) -> list[Row]:
        # Synapse's joined_members order is biggest first already (dir=b reverses it).
        params = {"limit": str(PAGE), "order_by": "joined_members"}
        if term:
            params["search_term"] = term
        answer = await self.client.get(ROOMS, **params)
        self.total = answer.get("total_rooms")
        return [
            Row(
                r["room_id"],
                (
                    r.get("name") or "",
                    r.get("canonical_alias") or "",
                    str(r.get("joined_members", "")),
                    str(r.get("joined_local_members", "")),
                    r["room_id"],
                ),
                r,
            )
            for r in answer.get("rooms", [])
        ]

    def open_row(self, row: Row) -> None:
        self.app.push_screen(RoomDetailsScreen(self.client, row.key))

    @work
    async def action_block(self) -> None:
        row = self.selected()
        if row is None:
            return
        state = await admin_call(self, self.client.get(room_path(row.key, "block")))
        if state is None:
            return
        block = not state.get("block")
        question = (
            f"Block {row.key}? Local users can no longer join it or be invited."
            if block
            else f"Unblock {row.key}?"
        )
        if await self.confirmed(question):
            done = f"{'Blocked' if block else 'Unblocked'} {row.key}"
            await self.change(
                self.client.put(room_path(row.key, "block"), {"block": block}), done
            )

    @work
    async def action_delete(self) -> None:
        row = self.selected()
        if row is None:
            return
        name = row.data.get("name") or row.data.get("canonical_alias") or row.key
        question = (
            f"Delete {name}? Every local member is removed and its history purged."
            " This cannot be undone."
        )
        if await self.confirmed(question):
            body = {"block": False, "purge": True}
            await self.change(
                self.client.delete(room_path(row.key), body), f"Deleted {name}"
            )


def _body(event: dict[str, Any]) -> str:
    content = event.get("content") or {}
    text = content.get("body") or content.get("membership") or content.get("name") or ""
    return str(text).replace("\n", " ")


class RoomDetailsScreen(Screen[None]):
    """One room: a summary line over three tabs (members, current state, recent events)."""

    DEFAULT_CSS = """
    RoomDetailsScreen #heading { background: $primary; color: $text; padding: 0 1; }
    RoomDetailsScreen #summary { padding: 0 1; color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("m", "tab('members')", "Members"),
        Binding("s", "tab('state')", "State"),
        Binding("e", "tab('events')", "Events"),
        Binding("ctrl+r", "reload", "Reload"),
    ]

    def __init__(self, client: AdminClient, room_id: str) -> None:
        super().__init__()
        self.client = client
        self.room_id = room_id

    def compose(self) -> ComposeResult:
        yield Static(self.room_id, id="heading", markup=False)
        yield Static("", id="summary", markup=False)
        with TabbedContent(initial="members"):
            with TabPane("Members", id="members"):
                yield DataTable(id="members-table", cursor_type="row")
            with TabPane("State", id="state"):
                yield DataTable(id="state-table", cursor_type="row")
            with TabPane("Recent events", id="events"):
                yield DataTable(id="events-table", cursor_type="row")
        yield KeysFooter()

    def on_mount(self) -> None:
        self.query_one("#members-table", DataTable).add_columns("User ID")
        self.query_one("#state-table", DataTable).add_columns(
            "Type", "State key", "Sender"
        )
        self.query_one("#events-table", DataTable).add_columns(
            "Time (UTC)", "Sender", "Type", "Body"
        )
        self.action_tab("members")
        self.action_reload()

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        self.query_one(f"#{tab}-table", DataTable).focus()

    @work(exclusive=True)
    async def action_reload(self) -> None:
        room = await admin_call(self, self.client.get(room_path(self.room_id)))
        if room is None:
            return
        self.query_one("#heading", Static).update(
            room.get("name") or room.get("canonical_alias") or self.room_id
        )
        self.query_one("#summary", Static).update(
            f"{self.room_id}  v{room.get('version', '?')}  {room.get('joined_members', 0)} members"
            f"  join: {room.get('join_rules') or '?'}  {'encrypted' if room.get('encryption') else 'unencrypted'}"
        )
        members = await admin_call(
            self, self.client.get(room_path(self.room_id, "members"))
        )
        state = await admin_call(
            self, self.client.get(room_path(self.room_id, "state"))
        )
        events = await admin_call(
            self,
            self.client.get(
                room_path(self.room_id, "messages"), dir="b", limit=str(RECENT_EVENTS)
            ),
        )
        self._fill("members", [(m,) for m in (members or {}).get("members", [])])
        self._fill(
            "state",
            [
                (e.get("type", ""), e.get("state_key", ""), e.get("sender", ""))
                for e in sorted(
                    (state or {}).get("state", []),
                    key=lambda e: (e.get("type", ""), e.get("state_key", "")),
                )
            ],
        )
        self._fill(
            "events",
            [
                (
                    table_time(e.get("origin_server_ts")),
                    e.get("sender", ""),
                    e.get("type", ""),
                    _body(e),
                )
                for e in (events or {}).get("chunk", [])
            ],
        )

    def _fill(self, tab: str, rows: list[tuple[str, ...]]) -> None:
        table = self.query_one(f"#{tab}-table", DataTable)
        table.clear()
        table.add_rows(rows)
