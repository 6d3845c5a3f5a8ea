"""Messages the TUI's screens send up to the app."""

from __future__ import annotations

from textual.message import Message

__all__ = ["ServerUnavailable"]


class ServerUnavailable(Message):
    """A request found no server on the admin socket: the app shows its "not running" screen
    (it also finds out by itself within one status poll)."""
