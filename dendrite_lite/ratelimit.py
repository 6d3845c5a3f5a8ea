"""Rate limiting (client-server API §Rate limiting): token buckets per (action, key).

Pure logic, no I/O. A RateLimiter guards one action (login, register, send, ...) and keeps one
bucket per key (a user ID or a client IP). Each check takes one token; a bucket holds at most
`burst` tokens and refills at `rate_per_second`. An empty bucket refuses with
429 M_LIMIT_EXCEEDED and `retry_after_ms` (the API layer should also send the `Retry-After`
header the spec asks for, in whole seconds, rounded up).

Memory stays bounded: buckets live in an OrderedDict in least-recently-used order, a bucket idle
long enough to be full again is dropped (it is indistinguishable from a fresh one, so nothing is
lost), and past `max_keys` the least recently used bucket is dropped even if not yet full.
Every check is O(1) amortised: each bucket is evicted at most once per insertion.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dendrite_lite.errors import Errcode, MatrixError

if TYPE_CHECKING:
    from dendrite_lite.config import RatelimitConfig

__all__ = ["RateLimiter", "RateLimits", "DEFAULT_MAX_KEYS"]

# 100k buckets of (key str, two floats) is ~20 MB at worst: affordable on a 1 GB VPS, and far
# more distinct IPs or users than a small server sees within one refill period.
DEFAULT_MAX_KEYS = 100_000

Clock = Callable[[], float]


class RateLimiter:
    """One action's token buckets. `rate_per_second <= 0` means unlimited (check never refuses)."""

    def __init__(
        self,
        rate_per_second: float,
        burst: int,
        *,
        action: str = "request",
        clock: Clock = time.monotonic,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        if rate_per_second > 0 and burst < 1:
            raise ValueError(f"{action}: burst must be at least 1 when rate limiting is on")
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.action = action
        self.rate = rate_per_second
        self.burst = burst
        self._clock = clock
        self._max_keys = max_keys
        # key -> (tokens left, time of that count); order = least recently checked first.
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        # After this long untouched, any bucket has refilled to `burst`.
        self._idle_after = burst / rate_per_second if rate_per_second > 0 else 0.0

    @property
    def unlimited(self) -> bool:
        return self.rate <= 0

    def __len__(self) -> int:
        """The number of buckets held (for tests and metrics)."""
        return len(self._buckets)

    def check(self, key: str, now: float | None = None) -> None:
        """Take one token from `key`'s bucket, or raise MatrixError(M_LIMIT_EXCEEDED) (429).

        A refused attempt takes nothing, so a client that waits `retry_after_ms` gets through.
        """
        if self.rate <= 0:
            return
        if now is None:
            now = self._clock()
        self._evict_idle(now)
        previous = self._buckets.pop(key, None)
        if previous is None:
            tokens = float(self.burst)
        else:
            left, at = previous
            # A clock may step back (an injected one, or a caller's `now`): then no time has
            # passed for this bucket, and its timestamp must not move back either, or the next
            # check would count the same seconds twice.
            now = max(now, at)
            tokens = min(float(self.burst), left + (now - at) * self.rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            wait_ms = math.ceil((1.0 - tokens) / self.rate * 1000)
            raise MatrixError(
                Errcode.LIMIT_EXCEEDED,
                f"Too many {self.action} requests; try again in {wait_ms} ms",
                retry_after_ms=max(1, wait_ms),
            )
        self._buckets[key] = (tokens - 1.0, now)
        if len(self._buckets) > self._max_keys:
            # Under a flood of distinct keys, forget the stalest: a little leniency for that key
            # is better than unbounded memory.
            self._buckets.popitem(last=False)

    def _evict_idle(self, now: float) -> None:
        buckets = self._buckets
        while buckets:
            _, at = next(iter(buckets.values()))
            if now - at < self._idle_after:
                break
            buckets.popitem(last=False)


@dataclass(frozen=True, slots=True)
class RateLimits:
    """The server's named limiters, built once from the [ratelimit] config section.

    Key conventions (callers must agree so buckets are shared): IP limiters take the client IP as
    the server sees it (after any trusted proxy header); user limiters take the full, lower-cased
    user ID, so `alice`, `@alice:example.org` and `@Alice:example.org` hit the same bucket.
    """

    login_ip: RateLimiter
    login_user: RateLimiter
    register_ip: RateLimiter
    send_user: RateLimiter
    upload_user: RateLimiter  # media uploads and /create
    # Emails sent by /requestToken, per IP: each mails anybody's address on request. Synapse's
    # rc_3pid_validation defaults (a burst of 5, then one per ~5.5 min), not configurable here.
    email_ip: RateLimiter

    @classmethod
    def from_config(cls, config: RatelimitConfig, *, clock: Clock = time.monotonic) -> RateLimits:
        def make(action: str, rate: float, burst: int) -> RateLimiter:
            return RateLimiter(rate if config.enabled else 0.0, burst, action=action, clock=clock)

        return cls(
            login_ip=make("login", config.login_per_second, config.login_burst),
            login_user=make("login", config.login_per_second, config.login_burst),
            register_ip=make("registration", config.register_per_second, config.register_burst),
            send_user=make("message", config.send_per_second, config.send_burst),
            upload_user=make("upload", config.upload_per_second, config.upload_burst),
            email_ip=make("email", 0.003, 5),
        )

    @classmethod
    def unlimited(cls) -> RateLimits:
        """No limits at all (tests, and servers with ratelimit.enabled = false)."""
        actions = ("login", "login", "registration", "message", "upload", "email")
        return cls(*(RateLimiter(0.0, 0, action=action) for action in actions))
