"""invite_room_state / knock_room_state (invites-v2.yaml, knocks.yaml, Matrix 1.16): we send
full PDUs with the create event first; we accept PDUs of the room with valid signatures and
the older stripped form (with a warning), and refuse would-be PDUs that fail the checks with
400 M_INVALID_PARAM from room version 12 on (left out before)."""

from __future__ import annotations

import copy
import logging
from typing import Any

import pytest

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.events.event import Event
from dendrite_lite.events.pdu import pdu_for_federation
from dendrite_lite.federation.room_state_hints import checked_state_hints, state_hint_pdus
from tests.unit.federation.ingest_env import ALICE, RemoteDag, make_keys, open_room_dag

TYPES = ("m.room.create", "m.room.join_rules", "m.room.name")


def _room(version: str) -> tuple[RemoteDag, Any, list[Event]]:
    keys, store = make_keys()
    dag = open_room_dag(version, keys)
    dag.add(ALICE, "m.room.name", {"name": "Hints"}, "")
    state = dag.state_before(dag.head)
    return dag, store, [dag.events[state[(t, "")]] for t in TYPES]


def _stripped(e: Event) -> dict[str, Any]:
    return {"type": e.type, "state_key": e.state_key, "sender": e.sender, "content": dict(e.content)}


def test_we_send_full_pdus_create_first() -> None:
    dag, _, events = _room("10")
    sent = state_hint_pdus(list(reversed(events)))
    assert [p["type"] for p in sent] == ["m.room.create", "m.room.join_rules", "m.room.name"]
    assert sent[0] == pdu_for_federation(events[0])
    assert {"auth_events", "prev_events", "hashes", "signatures", "depth"} <= sent[1].keys()


@pytest.mark.parametrize("version", ["10", "12"])
async def test_full_pdus_are_accepted_and_shown_stripped(version: str) -> None:
    dag, store, events = _room(version)
    got = await checked_state_hints(state_hint_pdus(events), dag.rv, dag.room_id, store, what="t")
    assert got == [_stripped(e) for e in events]


@pytest.mark.parametrize("version", ["10", "12"])
async def test_the_stripped_form_is_accepted_with_a_warning(version: str, caplog: pytest.LogCaptureFixture) -> None:
    dag, store, events = _room(version)
    legacy = [_stripped(e) for e in events[1:]]  # the older form, and no create event
    with caplog.at_level(logging.WARNING):
        got = await checked_state_hints(legacy, dag.rv, dag.room_id, store, what="invite_room_state")
    assert got == legacy
    assert "stripped form" in caplog.text and "no m.room.create" in caplog.text


@pytest.mark.parametrize("case", ["bad format", "bad signature", "other room", "not an event"])
async def test_v12_refuses_what_is_not_a_valid_pdu_of_the_room(case: str) -> None:
    dag, store, events = _room("12")
    pdus = state_hint_pdus(events)
    if case == "bad format":
        pdus[2] = {**pdus[2], "depth": "deep"}
    elif case == "bad signature":
        pdus[2] = copy.deepcopy(pdus[2])
        sigs = pdus[2]["signatures"]["remote.a"]
        key_id = next(iter(sigs))
        sigs[key_id] = sigs[key_id][::-1]
    elif case == "other room":
        other, _, other_events = _room("12")
        pdus.append(pdu_for_federation(other_events[2]))
    else:
        pdus.append("m.room.name")
    with pytest.raises(MatrixError) as e:
        await checked_state_hints(pdus, dag.rv, dag.room_id, store, what="invite_room_state")
    assert e.value.errcode == Errcode.INVALID_PARAM
    # A knock answer is not refused (the knock happened): bad entries are only left out.
    kept = await checked_state_hints(pdus, dag.rv, dag.room_id, store, what="k", refuse=False)
    assert kept == [_stripped(e) for e in events[: 2 if case in ("bad format", "bad signature") else 3]]


async def test_v10_leaves_out_entries_with_bad_signatures() -> None:
    dag, store, events = _room("10")
    pdus = state_hint_pdus(events)
    pdus[1] = copy.deepcopy(pdus[1])
    pdus[1]["signatures"] = {}
    got = await checked_state_hints(pdus, dag.rv, dag.room_id, store, what="invite_room_state")
    assert got == [_stripped(events[0]), _stripped(events[2])]
