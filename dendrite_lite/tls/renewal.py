"""When to get a certificate: the renewal and back-off policy, pure functions on AcmeState.

- Renew when a third of the lifetime remains (Let's Encrypt's own advice: day 60 of 90), unless
  the CA's ARI renewal info (RFC 9773) suggests a window: then a random time inside it, so a CA
  that must revoke many certificates spreads their renewals.
- A name added or removed in the config means a new certificate now.
- Failures back off in hours, doubling (1 h, 2 h, 4 h, ... capped at 24 h), never less than the
  CA's Retry-After: a crash loop or a restart must not retry at once, or it burns the CA's rate
  limits (Let's Encrypt: 5 failed validations per name per hour). The count and the next attempt
  live in state.json so a restart keeps them.
- An explicit request (`dendrite-lite tls renew`) ignores the back-off.
"""

from __future__ import annotations

import dataclasses
import email.utils
import random
from collections.abc import Sequence

from dendrite_lite.tls.state import AcmeState

__all__ = [
    "BACKOFF_FIRST_S",
    "BACKOFF_MAX_S",
    "after_failure",
    "after_success",
    "backoff_delay",
    "names_changed",
    "next_attempt_at",
    "parse_retry_after",
    "pick_in_window",
    "renewal_at",
]

BACKOFF_FIRST_S = 3600.0
BACKOFF_MAX_S = 24 * 3600.0


def backoff_delay(failures: int) -> float:
    """Seconds to wait after `failures` failed attempts in a row (failures >= 1)."""
    return min(BACKOFF_FIRST_S * 2 ** max(failures - 1, 0), BACKOFF_MAX_S)


def renewal_at(not_before: float, not_after: float) -> float:
    """When a third of the certificate's lifetime remains."""
    return not_after - (not_after - not_before) / 3


def pick_in_window(start: float, end: float, now: float, rng: random.Random | None = None) -> float:
    """A uniformly random time in ARI's suggested window [start, end] (RFC 9773 §4.2); a time
    already past means now. A window whose end is before its start is the CA's mistake: its
    start is used."""
    if end <= start:
        return max(start, now)
    chosen = (rng or random).uniform(start, end)
    return max(chosen, now)


def parse_retry_after(value: str, now: float) -> float | None:
    """The Unix time a Retry-After header (delay seconds or an HTTP date) points at; None
    when absent or unparseable."""
    value = value.strip()
    if value.isdigit():
        return now + int(value)
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


def names_changed(state: AcmeState, wanted: Sequence[str]) -> bool:
    return sorted(n.lower() for n in state.names) != sorted(n.lower() for n in wanted)


def next_attempt_at(state: AcmeState, wanted: Sequence[str], *, has_certificate: bool) -> float:
    """When the renewer should next try (0.0: now): renewal time, or now for a missing
    certificate or changed names, never before the back-off's next_attempt."""
    due = 0.0
    if has_certificate and not names_changed(state, wanted) and state.next_renewal is not None:
        due = state.next_renewal
    if state.failures and state.next_attempt is not None:
        due = max(due, state.next_attempt)
    return due


def after_failure(
    state: AcmeState, reason: str, now: float, retry_after: float | None = None
) -> AcmeState:
    failures = state.failures + 1
    wait = backoff_delay(failures)
    if retry_after is not None:
        wait = max(wait, retry_after - now)
    return dataclasses.replace(
        state, last_attempt=now, last_error=reason, failures=failures, next_attempt=now + wait
    )


def after_success(
    state: AcmeState,
    *,
    names: Sequence[str],
    issuer: str,
    not_before: float,
    not_after: float,
    challenge: str,
    directory: str,
    now: float,
) -> AcmeState:
    return dataclasses.replace(
        state,
        names=tuple(names),
        issuer=issuer,
        not_before=not_before,
        not_after=not_after,
        next_renewal=renewal_at(not_before, not_after),
        ari_window=None,
        challenge=challenge,
        directory=directory,
        last_attempt=now,
        last_success=now,
        last_error="",
        failures=0,
        next_attempt=None,
    )
