"""What the TUI's admin screens share: a listing screen (a search box over a table, filled
through the admin socket), yes/no and text-input dialogs, and a read-only details screen.

Every request runs in a worker (`@work`), never in a message handler, so the screen keeps
answering keys while the server works; a refused request becomes an error notification, never
a traceback, and no server at all brings up the app's "not running" screen. Colours are the
theme's variables and ANSI black, so a 16-colour terminal shows them as they are.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Input, Static

from dendrite_lite.tui.admin_client import (
    AdminClient,
    AdminRequestError,
    AdminUnavailable,
)
from dendrite_lite.tui.messages import ServerUnavailable

__all__ = [
    "ConfirmDialog",
    "DetailsScreen",
    "InputDialog",
    "KeysFooter",
    "ListingScreen",
    "Row",
    "admin_call",
    "show_error",
    "table_time",
]

# Opaque: a 16-colour terminal cannot dim the screen behind, so Textual makes a modal screen
# transparent there, and the keys of the footer behind would show above the dialog's own.
_DIALOG_CSS = """
{name}, {name}:ansi {{ align: center middle; background: ansi_black; }}
{name} > Vertical {{
    width: 64; height: auto; max-height: 20; padding: 0 1;
    border: round $accent; background: $surface;
}}
{name} Input {{ border: none; height: 1; margin-top: 1; background: $boost; }}
{name} .hint {{ color: $text-muted; margin-top: 1; }}
"""


class KeysFooter(Footer):
    """The footer on as many lines as its keys need: with the app's screen keys there are a
    dozen or more, and one line of 80 columns shows about six, while every key must show."""

    DEFAULT_CSS = """
    KeysFooter { layout: grid; grid-gutter: 0; grid-rows: 1; height: auto; }
    KeysFooter FooterKey { width: 1fr; }
    """
    KEYS_PER_LINE = 6

    def __init__(self) -> None:
        super().__init__(compact=True)

    def compose(self) -> ComposeResult:
        yield from super().compose()
        # Footer sets one grid column per key (a single line); ours wrap.
        self.styles.grid_size_columns = self.KEYS_PER_LINE


class ConfirmDialog(ModalScreen[bool]):
    """A yes/no question: y answers yes; n or escape answers no."""

    DEFAULT_CSS = _DIALOG_CSS.format(name="ConfirmDialog")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n", "answer(False)", "No"),
        Binding("escape", "answer(False)", "Cancel"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self._question = question

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self._question)
            yield Static("y: yes   n/esc: no", classes="hint")
        yield KeysFooter()

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class InputDialog(ModalScreen[str | None]):
    """One line of text: enter answers it (nothing when empty), escape answers None."""

    DEFAULT_CSS = _DIALOG_CSS.format(name="InputDialog")
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self, prompt: str, *, password: bool = False, placeholder: str = ""
    ) -> None:
        super().__init__()
        self._prompt = prompt
        self._input = Input(placeholder=placeholder, password=password)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self._prompt)
            yield self._input
            yield Static("enter: OK   esc: cancel", classes="hint")
        yield KeysFooter()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.value:
            self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class DetailsScreen(Screen[None]):
    """Read-only text (one thing's fields, a finding's fix); escape goes back."""

    DEFAULT_CSS = """
    DetailsScreen #heading { background: $primary; color: $text; padding: 0 1; }
    DetailsScreen VerticalScroll { padding: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back")
    ]

    def __init__(self, heading: str, text: str) -> None:
        super().__init__()
        self._heading = heading
        self._text = text

    def compose(self) -> ComposeResult:
        yield Static(self._heading, id="heading", markup=False)
        with VerticalScroll():
            yield Static(self._text, id="details", markup=False)
        yield KeysFooter()

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()


def table_time(ms: Any) -> str:
    """A server timestamp (ms) for a table cell: the UTC minute, its column says UTC."""
    if not isinstance(ms, int) or ms <= 0:
        return ""
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ms / 1000))


@dataclass(frozen=True, slots=True)
class Row:
    """One table row: its key (the thing's id), the cells shown, and what the server said."""

    key: str
    cells: tuple[str, ...]
    data: dict[str, Any]


def show_error(screen: Screen[Any], e: AdminRequestError | AdminUnavailable) -> None:
    """A refusal as an error notification; no server as the app's "not running" screen."""
    if isinstance(e, AdminRequestError):
        screen.notify(
            f"{e.errcode}: {e.error}", title=f"Refused ({e.status})", severity="error"
        )
    else:
        # The app covers every screen with its "not running" screen until the server answers.
        screen.post_message(ServerUnavailable())


async def admin_call(
    screen: Screen[Any], request: Awaitable[dict[str, Any]]
) -> dict[str, Any] | None:
    """The server's answer, or None after telling the admin why there is none."""
    try:
        return await request
    except (AdminRequestError, AdminUnavailable) as e:
        show_error(screen, e)
        return None


class _SearchInput(Input):
    """The listing's search box: escape (like enter) goes back to the table."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "screen.focus_table", "Table", show=False)
    ]


class ListingScreen(Screen[None]):
    """A heading, a search box (`/` focuses it, enter or escape goes back to the table) and a
    table of `fetch(term)`'s rows. Subclasses set COLUMNS and HEADING and implement `fetch`;
    their actions use `selected()` and `reload()`."""

    DEFAULT_CSS = """
    ListingScreen #heading { background: $primary; color: $text; padding: 0 1; }
    ListingScreen #search { border: none; height: 1; background: $boost; padding: 0 1; }
    ListingScreen DataTable { height: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "focus_search", "Search"),
        Binding("ctrl+r", "reload", "Reload"),
    ]
    COLUMNS: ClassVar[tuple[str, ...]] = ()
    HEADING: ClassVar[str] = ""

    def __init__(self, client: AdminClient) -> None:
        super().__init__()
        self.client = client
        self.heading = self.HEADING
        self.rows: dict[str, Row] = {}
        # How many the server has for the search, when `fetch` knows; one page is shown.
        self.total: int | None = None

    def compose(self) -> ComposeResult:
        yield Static(self.heading, id="heading", markup=False)
        yield _SearchInput(placeholder="/ to search", id="search")
        yield DataTable(id="table", cursor_type="row", zebra_stripes=True)
        yield KeysFooter()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns(*self.COLUMNS)
        table.focus()
        self.reload()

    async def fetch(self, term: str) -> list[Row]:
        raise NotImplementedError

    def reload(self) -> None:
        self._load(self.query_one("#search", Input).value.strip())

    @work(exclusive=True, group="listing")
    async def _load(self, term: str) -> None:
        try:
            rows = await self.fetch(term)
        except (AdminRequestError, AdminUnavailable) as e:
            show_error(self, e)
            return
        self._show(rows)

    def _show(self, rows: Iterable[Row]) -> None:
        table = self.query_one(DataTable)
        was = self.selected_key()
        table.clear()
        self.rows = {}
        for row in rows:
            self.rows[row.key] = row
            table.add_row(*row.cells, key=row.key)
        count = len(self.rows)
        if self.total is not None and self.total > count:
            shown = f"{count} of {self.total}: search to narrow"
        else:
            shown = str(count)
        self.query_one("#heading", Static).update(f"{self.heading} ({shown})")
        if was in self.rows:
            table.move_cursor(row=table.get_row_index(was))

    def selected_key(self) -> str | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    def selected(self) -> Row | None:
        """The row under the cursor; None (and a warning) when the table is empty."""
        key = self.selected_key()
        if key is None or key not in self.rows:
            self.notify("Nothing selected", severity="warning")
            return None
        return self.rows[key]

    def open_row(self, row: Row) -> None:
        """What enter on a row does (a details screen); nothing by default."""

    async def confirmed(self, question: str) -> bool:
        """The admin's answer to a yes/no question (await it in a worker only)."""
        return bool(await self.app.push_screen_wait(ConfirmDialog(question)))

    async def change(self, request: Awaitable[dict[str, Any]], done: str) -> bool:
        """Send a change; when the server takes it, say `done` and reload the table."""
        if await admin_call(self, request) is None:
            return False
        self.notify(done)
        self.reload()
        return True

    @work
    async def show_details(
        self, path: str, heading: str, describe: Callable[[dict[str, Any]], str]
    ) -> None:
        """GET `path` and show the answer, as `describe` words it, on a details screen."""
        found = await admin_call(self, self.client.get(path))
        if found is not None:
            self.app.push_screen(DetailsScreen(heading, describe(found)))

    def action_select(self) -> None:
        # Subclasses bind enter to this with priority, so that the footer shows it; in the
        # search box it still means "done searching".
        if self.query_one("#search", Input).has_focus:
            self.action_focus_table()
            return
        row = self.selected()
        if row is not None:
            self.open_row(row)

    @on(DataTable.RowSelected)
    def _row_selected(self) -> None:
        self.action_select()

    def action_focus_search(self) -> None:
        self.query_one("#search", Input).focus()

    def action_reload(self) -> None:
        self.reload()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "search":
            self.reload()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "search":
            self.action_focus_table()

    def action_focus_table(self) -> None:
        self.query_one(DataTable).focus()
