"""What a test does when a real peer (Synapse, Pebble, dnsmasq) is not on this machine.

Outside CI a missing peer skips its tests, so a developer without Pebble can still run the rest.
scripts/test.sh installs every peer and sets DENDRITE_LITE_REQUIRE_PEERS=1: there a missing peer
fails the run, instead of the interop tests quietly skipping and the suite passing without them.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest

__all__ = ["find_program", "peer_missing"]


def peer_missing(reason: str) -> NoReturn:
    if os.environ.get("DENDRITE_LITE_REQUIRE_PEERS") == "1":
        pytest.fail(f"{reason} (scripts/test.sh should have installed it)", pytrace=False)
    pytest.skip(reason)


def find_program(name: str) -> str | None:
    """`name` on PATH, or in the sbin directories a non-root PATH leaves out (dnsmasq)."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/local/sbin")
