"""MSC4143 RTC transports: the LiveKit SFU Element Call is sent to, described from the [calls]
config for both places clients look (api/wellknown/matrix.py's `org.matrix.msc4143.rtc_foci`,
api/client/matrixrtc.py's /rtc/transports)."""

from __future__ import annotations

from dendrite_lite.config import CallsConfig

__all__ = ["WELL_KNOWN_KEY", "rtc_transports"]

WELL_KNOWN_KEY = "org.matrix.msc4143.rtc_foci"


def rtc_transports(calls: CallsConfig) -> list[dict[str, str]]:
    """The transports offered, [] without an SFU."""
    if not calls.livekit_service_url:
        return []
    # Element Call appends "/sfu/get" to the URL as written: a trailing slash would double it.
    url = calls.livekit_service_url.rstrip("/")
    return [{"type": "livekit", "livekit_service_url": url}]
