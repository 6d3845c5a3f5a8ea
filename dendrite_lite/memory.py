"""Process memory: hand large freed buffers back to the OS.

glibc's malloc serves requests above M_MMAP_THRESHOLD with mmap and unmaps them on free, but
by default it RAISES that threshold to the size of each large block freed (up to 32 MiB). The
argon2id hash of every registration and login allocates its 9 MiB memory cost on a worker
thread; after the first one, those blocks come from the threads' arenas instead and, once
freed, stay in the process: ~110 MiB of RSS kept for good after a burst of 16 registrations.
Fixing the threshold at 1 MiB (which also switches off the dynamic adjustment) makes every such
buffer an mmap that is returned on free. Small allocations (events, rows) are untouched.
"""

from __future__ import annotations

import logging

__all__ = ["return_large_blocks_to_os", "MMAP_THRESHOLD"]

log = logging.getLogger(__name__)

_M_MMAP_THRESHOLD = -3  # malloc.h
MMAP_THRESHOLD = 1 << 20


def return_large_blocks_to_os() -> bool:
    """Pin glibc's mmap threshold; False (and nothing changed) where there is no glibc."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl, macOS: no mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    if not ok:
        log.debug("mallopt(M_MMAP_THRESHOLD) refused")
    return ok
