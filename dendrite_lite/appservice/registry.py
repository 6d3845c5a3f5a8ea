"""The configured application services and the namespace questions every layer asks of them.

    appservices = AppServices(registrations, server_name)
    reg = appservices.by_as_token(token)              # an AS authenticating (None: a user token)
    appservices.exclusive_owner("users", user_id)     # who may create this user (M_EXCLUSIVE)
    appservices.may_act_as(reg, user_id)              # identity assertion (?user_id=)

Pure lookups, no I/O: the HS -> AS delivery (appservice/sender.py) and the client API's
authentication both get one instance from service_wiring.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator, Sequence

from dendrite_lite.appservice.registration import Registration

__all__ = ["AppServices"]


class AppServices:
    def __init__(self, registrations: Sequence[Registration], server_name: str) -> None:
        self.registrations = tuple(registrations)
        self.server_name = server_name
        self._by_id = {r.id: r for r in self.registrations}

    def __iter__(self) -> Iterator[Registration]:
        return iter(self.registrations)

    def __len__(self) -> int:
        return len(self.registrations)

    def by_id(self, as_id: str) -> Registration | None:
        return self._by_id.get(as_id)

    def by_as_token(self, token: str) -> Registration | None:
        # Constant-time: a token is a password of the AS.
        found = None
        for reg in self.registrations:
            if hmac.compare_digest(reg.as_token.encode(), token.encode()):
                found = reg
        return found

    def sender_ids(self) -> set[str]:
        return {r.sender(self.server_name) for r in self.registrations}

    def may_act_as(self, reg: Registration, user_id: str) -> bool:
        """Whether `reg` may assert `user_id`: its own sender, or a local user in its user
        namespace (exclusive or not)."""
        if user_id == reg.sender(self.server_name):
            return True
        return user_id.endswith(":" + self.server_name) and reg.matches("users", user_id)

    def exclusive_owner(self, kind: str, value: str) -> Registration | None:
        """The AS holding `value` (a user id, alias or room id) in an exclusive namespace; an
        AS's sender belongs to it exclusively too."""
        for reg in self.registrations:
            if kind == "users" and value == reg.sender(self.server_name):
                return reg
            if reg.matches(kind, value, exclusive_only=True):
                return reg
        return None

    def owner_of(self, kind: str, value: str) -> Registration | None:
        """The first AS whose namespace (exclusive or not) holds `value`: who is asked about an
        unknown user or alias."""
        for reg in self.registrations:
            if reg.matches(kind, value):
                return reg
        return None

    def interested_in_user(self, user_id: str) -> list[Registration]:
        return [
            r for r in self.registrations
            if user_id == r.sender(self.server_name) or r.matches("users", user_id)
        ]

    def may_register(self, requester_as: Registration | None, user_id: str) -> bool:
        """A user id in an AS's exclusive namespace is that AS's to create, nobody else's."""
        owner = self.exclusive_owner("users", user_id)
        return owner is None or (requester_as is not None and owner.id == requester_as.id)
