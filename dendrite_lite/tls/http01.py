"""The HTTP-01 answers in flight: the issuer puts one per challenge, the port-80 listener serves
`/.well-known/acme-challenge/<token>` from here (RFC 8555 §8.3), the issuer removes it after.

In memory only: a challenge lives for seconds, and a restart starts a new order anyway.
"""

from __future__ import annotations

__all__ = ["Http01Answers"]


class Http01Answers:
    def __init__(self) -> None:
        self._answers: dict[str, str] = {}

    def put(self, token: str, key_authorization: str) -> None:
        self._answers[token] = key_authorization

    def remove(self, token: str) -> None:
        self._answers.pop(token, None)

    def get(self, token: str) -> str | None:
        """The key authorization to answer for `token`, None when no challenge has it."""
        return self._answers.get(token)
