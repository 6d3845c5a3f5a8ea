"""ClientEventSerializer: redacted events carry their redaction, one level deep."""

from __future__ import annotations

from dendrite_lite.events.event import Event
from dendrite_lite.storage.events import StoredEvent
from dendrite_lite.sync.client_events import ClientEventSerializer
from tests.helpers import make_event

ALICE = "@alice:example.org"


def _stored(event: Event, pos: int) -> StoredEvent:
    return StoredEvent(event, pos, False, False, None, None, None, None)


def test_a_redaction_that_redacts_itself_is_served_not_a_recursion_error() -> None:
    # Room version 1 ids are chosen by the sender: SyTest's federation server sends one.
    me = make_event("1", "m.room.redaction", ALICE, {}, event_id="$self:example.org",
                    redacts="$self:example.org")
    stored = _stored(me, 1)
    ser = ClientEventSerializer(ALICE, None, 1_700_000_001_000, {me.event_id: stored})
    body = ser.format(stored)
    because = body["unsigned"]["redacted_because"]
    assert because["event_id"] == "$self:example.org"
    assert "redacted_because" not in because["unsigned"]


def test_two_redactions_of_each_other() -> None:
    a = make_event("1", "m.room.redaction", ALICE, {}, event_id="$a:example.org", redacts="$b:example.org")
    b = make_event("1", "m.room.redaction", ALICE, {}, event_id="$b:example.org", redacts="$a:example.org")
    sa, sb = _stored(a, 1), _stored(b, 2)
    ser = ClientEventSerializer(ALICE, None, 1_700_000_001_000, {a.event_id: sb, b.event_id: sa})
    out = ser.format_all([sa, sb])
    assert [e["unsigned"]["redacted_because"]["event_id"] for e in out] == ["$b:example.org", "$a:example.org"]


def test_a_redacted_message_shows_its_redaction_and_reason() -> None:
    msg = make_event("10", "m.room.message", ALICE, {"body": "oops"}, event_id="$m")
    red = make_event("10", "m.room.redaction", ALICE, {"reason": "typo"}, event_id="$r", redacts="$m")
    ser = ClientEventSerializer(ALICE, None, 1_700_000_001_000, {"$m": _stored(red, 2)})
    body = ser.format(_stored(msg, 1))
    assert body["content"] == {}
    assert body["unsigned"]["redacted_because"]["content"] == {"reason": "typo", "redacts": "$m"}
