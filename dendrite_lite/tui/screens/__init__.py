"""The TUI's screens, one module each; tui/app.py lists them with their keys (SCREENS)."""
