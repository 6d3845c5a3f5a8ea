"""What a person sees in the TUI under Pilot: the current screen's lines as plain text."""

from __future__ import annotations

from textual.app import App

__all__ = ["screen_text"]


def screen_text(app: App[object]) -> str:
    """The screen as its 24 lines of text (what tmux capture-pane would show)."""
    strips = app.screen._compositor.render_strips()
    return "\n".join(strip.text.rstrip() for strip in strips)
