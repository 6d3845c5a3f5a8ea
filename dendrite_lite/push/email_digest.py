"""What an email notification says (users/email_notifier.py gathers the data): pure text from
plain values, a plain-text body and an HTML alternative with the same content.

One mail summarises rooms, newest first: the room's name (or its other members' names), the
last few notifications as "Sender: text" lines (media and encrypted messages only named, never
shown or decrypted), invites as "X invited you to Y", a link to each room at the user's web
client, and the unsubscribe link.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

__all__ = [
    "MAX_LINES",
    "Mail",
    "RoomDigest",
    "message_line",
    "render_mail",
    "room_link",
    "room_name",
]

MAX_LINES = 3  # notifications shown per room; the rest are counted
MAX_TEXT = 200  # characters of a message body

_MEDIA = {
    "m.image": "sent an image", "m.file": "sent a file", "m.video": "sent a video",
    "m.audio": "sent an audio message", "m.location": "shared a location",
}


@dataclass(frozen=True, slots=True)
class RoomDigest:
    name: str
    link: str
    lines: list[str]  # oldest first, at most MAX_LINES
    more: int = 0  # notifications left out
    invited_by: str | None = None  # the room is an invite from this person


@dataclass(frozen=True, slots=True)
class Mail:
    subject: str
    text: str
    html: str


def one_line(text: str, limit: int = MAX_TEXT) -> str:
    """Whitespace (newlines too: subjects are headers) collapsed, cut at `limit` characters."""
    flat = re.sub(r"\s+", " ", text).strip()
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def message_line(sender: str, event_type: str, content: Mapping[str, Any]) -> str:
    """One notification as a line of the mail."""
    if event_type == "m.room.encrypted":
        return f"{sender} sent an encrypted message"
    if event_type == "m.sticker":
        return f"{sender} sent a sticker"
    if event_type != "m.room.message":
        return f"{sender} sent a {one_line(event_type, 60)} event"
    msgtype, body = content.get("msgtype"), content.get("body")
    if msgtype in _MEDIA:
        return f"{sender} {_MEDIA[msgtype]}"
    if not isinstance(body, str):
        return f"{sender} sent a message" + (" that was deleted" if not content else "")
    if msgtype == "m.emote":
        return f"* {sender} {one_line(body)}"
    return f"{sender}: {one_line(body)}"


def room_name(name: str | None, alias: str | None, others: Sequence[str]) -> str:
    """The room's name, else its alias, else its other members' names (a direct chat)."""
    for value in (name, alias):
        if value and value.strip():
            return one_line(value, 80)
    if not others:
        return "an empty room"
    if len(others) == 1:
        return others[0]
    if len(others) == 2:
        return f"{others[0]} and {others[1]}"
    return f"{others[0]}, {others[1]} and {len(others) - 2} others"


def room_link(client_base_url: str, room_id: str) -> str:
    """The room in a web client that takes Element's links: <base>/#/room/<room id>."""
    return f"{client_base_url.rstrip('/')}/#/room/{quote(room_id, safe='!:@')}"


def _subject(brand: str, rooms: Sequence[RoomDigest]) -> str:
    first = rooms[0]
    if len(rooms) == 1 and first.invited_by is not None:
        return f"[{brand}] {first.invited_by} invited you to {first.name}"
    if len(rooms) == 1:
        return f"[{brand}] New messages in {first.name}"
    others = len(rooms) - 1
    return f"[{brand}] New messages in {first.name} and {others} other room{'s' * (others > 1)}"


def render_mail(
    *,
    brand: str,
    server_name: str,
    user_name: str,
    address: str,
    rooms: Sequence[RoomDigest],
    unsubscribe_link: str,
) -> Mail:
    """The mail about `rooms` (newest first, at least one)."""
    text = [f"Hi {user_name},", "", f"You have unread messages on {server_name}:", ""]
    parts = [
        f"<p>Hi {html.escape(user_name)},</p>",
        f"<p>You have unread messages on {html.escape(server_name)}:</p>",
    ]
    for room in rooms:
        heading = (
            f"{room.invited_by} invited you to {room.name}" if room.invited_by else room.name
        )
        lines = list(room.lines) + ([f"(and {room.more} more)"] if room.more else [])
        text += [heading, *(f"  {line}" for line in lines), f"  Open: {room.link}", ""]
        items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
        parts.append(
            f'<h3><a href="{html.escape(room.link)}">{html.escape(heading)}</a></h3>'
            + (f"<ul>{items}</ul>" if items else "")
        )
    why = f"You get these mails because email notifications are on for {address} at {server_name}."
    text += ["--", why, "To stop them, open this link:", unsubscribe_link, ""]
    parts.append(
        f"<hr><p><small>{html.escape(why)} "
        f'<a href="{html.escape(unsubscribe_link)}">Unsubscribe</a></small></p>'
    )
    body = "<!DOCTYPE html>\n<html><body>\n" + "\n".join(parts) + "\n</body></html>\n"
    return Mail(one_line(_subject(brand, rooms), 250), "\n".join(text), body)
