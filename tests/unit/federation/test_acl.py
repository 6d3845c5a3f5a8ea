"""m.room.server_acl evaluation (event-schemas m.room.server_acl: the five steps)."""

from __future__ import annotations

from typing import Any

import pytest

from dendrite_lite.federation.acl import acl_host, server_allowed


@pytest.mark.parametrize(
    ("name", "host"),
    [("evil.com", "evil.com"), ("evil.com:8448", "evil.com"), ("1.2.3.4:80", "1.2.3.4"),
     ("[::1]:8448", "[::1]"), ("[::1]", "[::1]")],
)
def test_port_is_never_considered(name: str, host: str) -> None:
    assert acl_host(name) == host


@pytest.mark.parametrize(
    ("content", "server", "allowed"),
    [
        (None, "anyone.org", True),  # 1. no ACL in the room
        ({"allow": ["*"]}, "1.2.3.4:8448", True),  # allow_ip_literals defaults to true
        ({"allow": ["*"], "allow_ip_literals": False}, "1.2.3.4:8448", False),  # 2.
        ({"allow": ["*"], "allow_ip_literals": False}, "[::1]:8448", False),
        ({"allow": ["*"], "allow_ip_literals": "no"}, "1.2.3.4", True),  # not a boolean: true
        ({"allow": ["*"], "deny": ["evil.com"]}, "evil.com:1234", False),  # 3. deny first
        ({"allow": ["evil.com"], "deny": ["evil.com"]}, "evil.com", False),
        ({"allow": ["*"], "deny": ["*.evil.com"]}, "a.evil.com", False),
        ({"allow": ["*"], "deny": ["*.evil.com"]}, "evil.com", True),
        ({"allow": ["*.good.org"]}, "MATRIX.GOOD.ORG", True),  # 4. case-insensitive glob
        ({"allow": ["good.or?"]}, "good.org", True),
        ({"allow": ["good.org"]}, "bad.org", False),  # 5. otherwise deny
        ({}, "good.org", False),  # no allow list: nobody
        ({"allow": "*"}, "good.org", False),  # malformed allow: an empty list
        ({"allow": ["*", 5], "deny": [None]}, "good.org", True),  # non-strings ignored
    ],
)
def test_acl_steps(content: dict[str, Any] | None, server: str, allowed: bool) -> None:
    assert server_allowed(content, server) is allowed
