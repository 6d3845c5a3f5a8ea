"""dendrite_lite.memory: large freed blocks go back to the OS (glibc only)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import dendrite_lite
from dendrite_lite.memory import return_large_blocks_to_os

REPO = Path(dendrite_lite.__file__).resolve().parents[1]

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_freed_password_sized_buffers_leave_rss() -> None:
    # In a fresh process: 19 MiB buffers (argon2id's memory cost) allocated, touched and freed on
    # worker threads, as password hashing does; RSS must come back down afterwards.
    script = textwrap.dedent("""
        import ctypes, sys, threading
        from dendrite_lite.memory import return_large_blocks_to_os
        if sys.argv[1] == "pinned":
            assert return_large_blocks_to_os()
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc.restype = ctypes.c_void_p
        libc.free.argtypes = [ctypes.c_void_p]
        def rss_mib():
            for line in open("/proc/self/status"):
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        size = 19 << 20
        def hash_like():
            for _ in range(3):
                p = libc.malloc(size)
                ctypes.memset(p, 1, size)
                libc.free(p)
        before = rss_mib()
        threads = [threading.Thread(target=hash_like) for _ in range(4)]
        for t in threads: t.start()
        for t in threads: t.join()
        print(round(rss_mib() - before))
    """)

    def kept(mode: str) -> int:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
        out = subprocess.run(
            [sys.executable, "-c", script, mode], capture_output=True, text=True, check=True,
            cwd=REPO, env=env,
        )
        return int(out.stdout.strip())

    assert kept("pinned") < 10
    assert kept("default") > 30  # what the pin is for: glibc's default keeps them


def test_is_harmless_to_call_twice() -> None:
    assert return_large_blocks_to_os() == return_large_blocks_to_os()
