"""Token-bucket rate limiting: bursts, 429 with retry_after_ms, refill, keys, eviction, config."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dendrite_lite.config import Config, RatelimitConfig
from dendrite_lite.errors import MatrixError
from dendrite_lite.ratelimit import RateLimiter, RateLimits


def refused(limiter: RateLimiter, key: str, now: float) -> MatrixError:
    with pytest.raises(MatrixError) as info:
        limiter.check(key, now)
    return info.value


def test_burst_then_429_with_retry_after() -> None:
    limiter = RateLimiter(0.5, 3, action="login")  # one token every 2 s
    for _ in range(3):
        limiter.check("1.2.3.4", now=100.0)
    err = refused(limiter, "1.2.3.4", 100.0)
    assert (err.errcode, err.status) == ("M_LIMIT_EXCEEDED", 429)
    assert err.extra == {"retry_after_ms": 2000}
    assert err.to_json() == {
        "errcode": "M_LIMIT_EXCEEDED",
        "error": "Too many login requests; try again in 2000 ms",
        "retry_after_ms": 2000,
    }
    # Part of the way there, the wait shrinks accordingly (rounded up to whole ms).
    assert refused(limiter, "1.2.3.4", 101.5).extra["retry_after_ms"] == 500
    assert refused(limiter, "1.2.3.4", 101.9997).extra["retry_after_ms"] == 1


def test_waiting_retry_after_is_enough() -> None:
    limiter = RateLimiter(0.2, 2)
    limiter.check("u", 0.0)
    limiter.check("u", 0.0)
    wait = refused(limiter, "u", 1.0).extra["retry_after_ms"]
    assert wait == 4000
    with pytest.raises(MatrixError):
        limiter.check("u", 1.0 + wait / 1000 - 0.01)
    limiter.check("u", 1.0 + wait / 1000)  # refusals took no tokens


def test_refill_over_time_is_capped_at_burst() -> None:
    limiter = RateLimiter(1.0, 2)
    limiter.check("k", 0.0)
    limiter.check("k", 0.0)
    refused(limiter, "k", 0.5)
    limiter.check("k", 1.0)  # one token back after 1 s
    refused(limiter, "k", 1.0)
    # A long idle period refills only up to the burst.
    limiter.check("k", 1000.0)
    limiter.check("k", 1000.0)
    refused(limiter, "k", 1000.0)


def test_keys_are_independent() -> None:
    limiter = RateLimiter(0.1, 1)
    limiter.check("@alice:a", 0.0)
    refused(limiter, "@alice:a", 0.0)
    limiter.check("@bob:a", 0.0)
    refused(limiter, "@bob:a", 0.0)


def test_rate_zero_is_unlimited() -> None:
    limiter = RateLimiter(0.0, 0)
    assert limiter.unlimited
    for _ in range(10_000):
        limiter.check("k", 0.0)
    assert len(limiter) == 0  # keeps no state at all


def test_injected_clock_is_used_when_now_is_omitted() -> None:
    now = [0.0]
    limiter = RateLimiter(1.0, 1, clock=lambda: now[0])
    limiter.check("k")
    with pytest.raises(MatrixError):
        limiter.check("k")
    now[0] = 1.0
    limiter.check("k")


def test_clock_stepping_back_does_not_add_tokens() -> None:
    limiter = RateLimiter(1.0, 1)
    limiter.check("k", 10.0)
    refused(limiter, "k", 5.0)
    refused(limiter, "k", 10.5)
    limiter.check("k", 11.0)


def test_idle_full_buckets_are_evicted() -> None:
    limiter = RateLimiter(1.0, 5)  # a bucket is full again 5 s after its last use
    for i in range(100):
        limiter.check(f"ip{i}", 0.0)
    assert len(limiter) == 100
    limiter.check("late", 4.9)
    assert len(limiter) == 101
    limiter.check("later", 5.0)
    assert len(limiter) == 2  # the 100 idle buckets went; "late" is not full yet
    # An evicted bucket was full, so its key starts over with a full burst.
    for _ in range(5):
        limiter.check("ip0", 5.0)
    refused(limiter, "ip0", 5.0)


def test_recent_use_keeps_a_bucket() -> None:
    limiter = RateLimiter(1.0, 2)
    limiter.check("a", 0.0)
    limiter.check("a", 0.0)
    limiter.check("b", 1.0)
    # "a" was emptied at t=0; at t=1.5 it has 1.5 tokens and must not have been forgotten.
    limiter.check("a", 1.5)
    refused(limiter, "a", 1.5)


def test_max_keys_bounds_memory() -> None:
    limiter = RateLimiter(0.001, 1, max_keys=3)
    for i in range(10):
        limiter.check(f"k{i}", float(i))
        assert len(limiter) <= 3
    # The three most recent keys are still limited; the oldest ones were dropped.
    refused(limiter, "k9", 10.0)
    refused(limiter, "k7", 10.0)
    limiter.check("k0", 10.0)


def test_invalid_settings() -> None:
    with pytest.raises(ValueError, match="burst"):
        RateLimiter(1.0, 0)
    with pytest.raises(ValueError, match="max_keys"):
        RateLimiter(1.0, 1, max_keys=0)


def test_rate_limits_from_config() -> None:
    config = RatelimitConfig(
        login_per_second=1.0,
        login_burst=2,
        register_per_second=0.0,  # registration unlimited
        send_per_second=0.5,
        send_burst=1,
    )
    limits = RateLimits.from_config(config)
    limits.login_ip.check("1.2.3.4", 0.0)
    limits.login_ip.check("1.2.3.4", 0.0)
    refused(limits.login_ip, "1.2.3.4", 0.0)
    # Per-IP and per-account login buckets are separate limiters.
    limits.login_user.check("1.2.3.4", 0.0)
    assert limits.register_ip.unlimited
    limits.send_user.check("@a:b", 0.0)
    err = refused(limits.send_user, "@a:b", 0.0)
    assert err.extra["retry_after_ms"] == 2000
    assert "message" in err.error


def test_rate_limits_disabled() -> None:
    limits = RateLimits.from_config(RatelimitConfig(enabled=False))
    for limiter in (limits.login_ip, limits.login_user, limits.register_ip, limits.send_user):
        assert limiter.unlimited
        for _ in range(50):
            limiter.check("k", 0.0)
    off = RateLimits.unlimited()
    assert off.login_ip.unlimited and off.login_user.unlimited
    assert off.register_ip.unlimited and off.send_user.unlimited


def test_default_config_matches_synapse_defaults() -> None:
    limits = RateLimits.from_config(Config().ratelimit)
    assert (limits.login_ip.rate, limits.login_ip.burst) == (0.003, 5)
    assert (limits.register_ip.rate, limits.register_ip.burst) == (0.17, 3)
    assert (limits.send_user.rate, limits.send_user.burst) == (0.2, 10)
    for _ in range(3):
        limits.register_ip.check("9.9.9.9", 0.0)
    assert refused(limits.register_ip, "9.9.9.9", 0.0).extra["retry_after_ms"] == 5883


def test_check_is_constant_time_per_call() -> None:
    # 200k distinct keys with a small max_keys: if a check scanned the buckets this would take
    # minutes; bounded eviction keeps it well under a few seconds.
    import time

    limiter = RateLimiter(1.0, 1, max_keys=1000)
    start = time.perf_counter()
    for i in range(200_000):
        limiter.check(str(i), 0.0)
    assert len(limiter) == 1000
    assert time.perf_counter() - start < 5.0


# --- against a reference model -----------------------------------------------------------------

def reference_decisions(rate: float, burst: int, checks: list[tuple[str, float]]) -> list[bool]:
    """The textbook token bucket with no eviction, one bucket per key."""
    buckets: dict[str, tuple[float, float]] = {}
    out: list[bool] = []
    for key, now in checks:
        tokens, at = buckets.get(key, (float(burst), now))
        tokens = min(float(burst), tokens + (now - at) * rate)
        if tokens >= 1.0:
            buckets[key] = (tokens - 1.0, now)
            out.append(True)
        else:
            buckets[key] = (tokens, now)
            out.append(False)
    return out


@settings(max_examples=300, deadline=None)
@given(
    rate=st.sampled_from([0.1, 0.5, 1.0, 3.0]),
    burst=st.integers(1, 5),
    steps=st.lists(
        st.tuples(st.sampled_from("abcd"), st.sampled_from([0.0, 0.1, 0.5, 2.0, 30.0])),
        max_size=60,
    ),
)
def test_eviction_never_changes_a_decision(
    rate: float, burst: int, steps: list[tuple[str, float]]
) -> None:
    # Idle eviction only forgets full buckets, so with time moving forward the limiter decides
    # exactly like a bucket-per-key model that never forgets anything.
    checks: list[tuple[str, float]] = []
    now = 0.0
    for key, dt in steps:
        now += dt
        checks.append((key, now))
    limiter = RateLimiter(rate, burst)
    got: list[bool] = []
    for key, at in checks:
        try:
            limiter.check(key, at)
            got.append(True)
        except MatrixError:
            got.append(False)
    assert got == reference_decisions(rate, burst, checks)
    # Within any window, a key never gets more than burst + rate * window through.
    for key in "abcd":
        times = [at for (k, at), ok in zip(checks, got) if ok and k == key]
        for i, start in enumerate(times):
            for j in range(i, len(times)):
                assert j - i + 1 <= burst + rate * (times[j] - start) + 1e-9
