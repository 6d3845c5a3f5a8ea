"""The redaction algorithm per room version (rooms/fragments/v1, v6, v9, v11-redactions.md and
rooms/v8.md §Redactions).

Redaction is what signatures and reference hashes (event ids) are computed over, so a single
key kept or dropped by mistake breaks federation with every other server: every rule below is
cross-checked against Synapse in tests/interop/test_synapse_event_crosscheck.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dendrite_lite.events.room_versions import RoomVersion

__all__ = ["redact", "redact_content"]

# Top-level keys every room version keeps.
_KEPT_KEYS = frozenset(
    {
        "event_id",
        "type",
        "room_id",
        "sender",
        "state_key",
        "content",
        "hashes",
        "signatures",
        "depth",
        "prev_events",
        "auth_events",
        "origin_server_ts",
    }
)
# v11 stopped protecting these (rooms/v11.md §Redactions).
_PRE_V11_KEPT_KEYS = frozenset({"origin", "membership", "prev_state"})


def _kept_content_keys(event_type: str, rv: RoomVersion) -> frozenset[str] | None:
    """Content keys `event_type` keeps when redacted; None means "all of them"."""
    if event_type == "m.room.member":
        keys = {"membership"}
        if rv.restricted_join_rule_fix:  # v9+
            keys.add("join_authorised_via_users_server")
        return frozenset(keys)
    if event_type == "m.room.create":
        # v11+: the whole create content is protected; before, only `creator`.
        return None if rv.updated_redaction_rules else frozenset({"creator"})
    if event_type == "m.room.join_rules":
        # v8+ (restricted rooms) also keep the `allow` conditions (rooms/v8.md §Redactions).
        return frozenset({"join_rule", "allow"} if rv.restricted_join_rule else {"join_rule"})
    if event_type == "m.room.power_levels":
        keys = {
            "ban",
            "events",
            "events_default",
            "kick",
            "redact",
            "state_default",
            "users",
            "users_default",
        }
        if rv.updated_redaction_rules:  # v11+
            keys.add("invite")
        return frozenset(keys)
    if event_type == "m.room.history_visibility":
        return frozenset({"history_visibility"})
    if event_type == "m.room.aliases" and rv.special_case_aliases_auth:  # v1-v5
        return frozenset({"aliases"})
    if event_type == "m.room.redaction" and rv.updated_redaction_rules:  # v11+
        return frozenset({"redacts"})
    return frozenset()


def redact_content(event_type: str, content: Any, rv: RoomVersion) -> dict[str, Any]:
    """The content left after redacting an event of `event_type` in room version `rv`."""
    if not isinstance(content, Mapping):
        return {}
    kept = _kept_content_keys(event_type, rv)
    if kept is None:
        return dict(content)
    out = {k: v for k, v in content.items() if k in kept}
    if event_type == "m.room.member" and rv.updated_redaction_rules:
        # v11: third_party_invite "is no longer redacted, but will only contain the signed key"
        # (rooms/v11.md): an object stays, emptied of all but `signed` (Synapse agrees).
        tpi = content.get("third_party_invite")
        if isinstance(tpi, Mapping):
            out["third_party_invite"] = {k: v for k, v in tpi.items() if k == "signed"}
    return out


def redact(pdu: Mapping[str, Any], rv: RoomVersion) -> dict[str, Any]:
    """A new dict: `pdu` with every key the room version does not protect removed.

    The input is not modified. Nested values that are kept are shared, not copied; treat the
    result as read-only or deep-copy it.
    """
    keep = _KEPT_KEYS if rv.updated_redaction_rules else _KEPT_KEYS | _PRE_V11_KEPT_KEYS
    out = {k: v for k, v in pdu.items() if k in keep}
    out["content"] = redact_content(str(pdu.get("type", "")), pdu.get("content"), rv)
    return out
