"""When an email pusher mails (users/email_notifier.py): pure rules over a pusher's
notifications after its position, oldest first.

- A notification is ripe `delay` after it arrived (its origin_server_ts: we keep no receive
  time) if it is still unread by then.
- A mail goes out when a ripe notification's room is not throttled: its last mail was at least
  `throttle` ago. The mail then covers every unread notification so far, of throttled rooms
  and not yet ripe ones too (as Synapse's does: a burst of messages is one mail, not its first
  message now and the rest a throttle window later), and starts the throttle of each room it
  names. So a busy room mails at most once per throttle window; what arrives meanwhile waits
  for the next mail.
- The position moves past what was mailed and what was read; never past an unread notification
  that was not mailed, so a restart resumes exactly there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Pending", "Plan", "plan"]


@dataclass(frozen=True, slots=True)
class Pending:
    room_id: str
    stream_ordering: int
    arrived_ms: int
    read: bool  # read, or not the user's to be told about (before their join, say)


@dataclass(frozen=True, slots=True)
class Plan:
    mail: list[Pending]  # what to mail now, oldest first; empty: no mail
    position: int | None  # the pusher's new position; None: unchanged
    next_due_ms: int | None  # when the rest may be mailed; None: nothing is waiting


def plan(
    rows: Sequence[Pending],
    last_sent: Mapping[str, int],
    *,
    now_ms: int,
    delay_ms: int,
    throttle_ms: int,
) -> Plan:
    def due_at(row: Pending) -> int:
        last = last_sent.get(row.room_id)
        return max(row.arrived_ms + delay_ms, last + throttle_ms if last is not None else 0)

    unread = [r for r in rows if not r.read]
    if any(due_at(r) <= now_ms for r in unread):
        return Plan(unread, rows[-1].stream_ordering, None)
    read_end: int | None = None  # the position after the reads before any unread one
    for row in rows:
        if not row.read:
            break
        read_end = row.stream_ordering
    return Plan([], read_end, min(map(due_at, unread), default=None))
