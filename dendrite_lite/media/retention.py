"""Remote media retention (media.remote_media_lifetime_days): other servers' media that nobody
here read for that long is deleted from the cache, as `dendrite-lite media purge-remote` does by
hand. It is a cache: a user who asks again gets it fetched again from its server. On a small
disk (a Raspberry Pi's SD card) this is what keeps a server that joined big rooms from filling
it. Our users' own uploads are never touched.

The first pass runs a few minutes after start (not at start: a server restarted in a crash
loop should serve first), then every `interval_s`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from dendrite_lite.media.admin import MediaAdmin, PurgeResult

__all__ = ["RemoteMediaRetention"]

log = logging.getLogger(__name__)

FIRST_PASS_AFTER_S = 300.0
INTERVAL_S = 6 * 3600.0


class RemoteMediaRetention:
    def __init__(
        self,
        admin: MediaAdmin,
        lifetime_days: float,
        *,
        clock: Callable[[], float] = time.time,
        first_pass_after_s: float = FIRST_PASS_AFTER_S,
        interval_s: float = INTERVAL_S,
    ) -> None:
        self._admin = admin
        self._lifetime_s = lifetime_days * 86400
        self._clock = clock
        self._first_pass_after_s = first_pass_after_s
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self.last_run_ts: int | None = None  # ms, for the admin API's job list and the TUI
        self.last_result: str | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="media-retention")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def purge_once(self) -> PurgeResult:
        """Delete the remote media last read before now minus the lifetime."""
        now = self._clock()
        result = await self._admin.purge_remote(int((now - self._lifetime_s) * 1000))
        self.last_run_ts = int(now * 1000)
        self.last_result = f"ok: {result.media} remote file(s) deleted, {result.bytes} bytes freed"
        if result.media:
            log.info("media retention: deleted %d cached remote file(s), %d bytes", result.media, result.bytes)
        return result

    async def _run(self) -> None:
        await asyncio.sleep(self._first_pass_after_s)
        while True:
            try:
                await self.purge_once()
            except Exception as e:  # a failed pass must not end the job: the next one retries
                self.last_run_ts = int(self._clock() * 1000)
                self.last_result = f"failed: {e}"
                log.exception("media retention pass failed")
            await asyncio.sleep(self.interval_s)
