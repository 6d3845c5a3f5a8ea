"""Which member events each device already has, so lazy-loading /sync does not send them again
(client-server-api §Lazy-loading room members: the server MAY skip "redundant membership
events", the member events of senders whose membership has not changed, unless the filter sets
include_redundant_members).

An entry is (room, member) -> (member event id, room-stream position of the response that
carried it). A member event counts as already sent only when the device's `since` token is at
or after that position: a client whose response was lost syncs again from an older token and
is sent the member again. Kept in memory per (user, device), bounded on both levels; forgetting
an entry only means one redundant member event later. An initial or full_state sync starts the
device's record over.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

__all__ = ["SentMembers", "MAX_DEVICES", "MAX_MEMBERS_PER_DEVICE"]

# An entry is ~200 bytes: 512 devices x 1,000 members stays under ~100 MB at the very worst.
MAX_DEVICES = 512
MAX_MEMBERS_PER_DEVICE = 1000

_Device = tuple[str, str | None]  # (user_id, device_id)
_Key = tuple[str, str]  # (room_id, member user_id)


class SentMembers:
    def __init__(
        self, *, max_devices: int = MAX_DEVICES, max_members: int = MAX_MEMBERS_PER_DEVICE
    ) -> None:
        self._max_devices = max_devices
        self._max_members = max_members
        self._devices: OrderedDict[_Device, OrderedDict[_Key, tuple[str, int]]] = OrderedDict()

    def reset(self, user_id: str, device_id: str | None) -> None:
        """An initial or full_state sync: the client starts over, so must we."""
        self._devices.pop((user_id, device_id), None)

    def forget_room(self, user_id: str, device_id: str | None, room_id: str) -> None:
        """A room sent in full again (joined since the token): its members are all resent."""
        sent = self._devices.get((user_id, device_id))
        if sent is not None:
            for key in [k for k in sent if k[0] == room_id]:
                del sent[key]

    def already_sent(
        self, user_id: str, device_id: str | None, room_id: str, member: str, event_id: str,
        since: int,
    ) -> bool:
        """Did a response the device has seen (one at or before `since`) carry this event?"""
        sent = self._devices.get((user_id, device_id))
        entry = sent.get((room_id, member)) if sent is not None else None
        return entry is not None and entry[0] == event_id and entry[1] <= since

    def record(
        self, user_id: str, device_id: str | None, room_id: str,
        members: Iterable[tuple[str, str]], position: int,
    ) -> None:
        """(member, event id) pairs sent to the device in a response at room-stream `position`."""
        device = (user_id, device_id)
        sent = self._devices.get(device)
        if sent is None:
            sent = self._devices[device] = OrderedDict()
            if len(self._devices) > self._max_devices:
                self._devices.popitem(last=False)
        else:
            self._devices.move_to_end(device)
        for member, event_id in members:
            key = (room_id, member)
            earlier = sent.get(key)
            # Sent again (a retried sync): a device holding a token from the first response
            # has it too, so the first position still says so.
            if earlier is None or earlier[0] != event_id:
                sent[key] = (event_id, position)
            sent.move_to_end(key)
        while len(sent) > self._max_members:
            sent.popitem(last=False)
