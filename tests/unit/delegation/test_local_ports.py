"""delegation/local_ports.py: free, in use, or needing privilege, on real loopback sockets (a
fake socket for the privilege case, since the tests may run as root)."""

from __future__ import annotations

import socket
from typing import Any

from dendrite_lite.delegation.local_ports import PortState, probe_port


def test_free_and_in_use() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        holder.listen()
        assert probe_port(f"127.0.0.1:{port}") is PortState.IN_USE
        assert not PortState.IN_USE.usable
    assert probe_port(f"127.0.0.1:{port}") is PortState.FREE


def test_a_port_below_1024_for_a_normal_user() -> None:
    class NoPrivilege(socket.socket):
        def bind(self, address: Any) -> None:
            raise PermissionError(13, "Permission denied")

    state = probe_port("0.0.0.0:443", NoPrivilege)
    assert state is PortState.NEEDS_PRIVILEGE and state.usable


def test_an_address_that_is_not_this_machines() -> None:
    # TEST-NET-3: never assigned to a machine, so never this one.
    state = probe_port("203.0.113.7:8448")
    assert state is PortState.NOT_HERE and not state.usable
