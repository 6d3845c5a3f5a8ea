"""Login tokens: single use, two minutes, only hashes held."""

from __future__ import annotations

from dendrite_lite.users.login_tokens import TOKEN_LIFETIME_MS, LoginTokens


def test_single_use_and_expiry() -> None:
    now = [100.0]
    tokens = LoginTokens(clock=lambda: now[0])
    first = tokens.issue("@a:x")["login_token"]
    second = tokens.issue("@b:x")["login_token"]
    assert first not in str(tokens._tokens)  # hashes only
    assert tokens.consume(first) == "@a:x"
    assert tokens.consume(first) is None
    now[0] += TOKEN_LIFETIME_MS / 1000
    assert tokens.consume(second) is None
    assert tokens.consume(5) is None
