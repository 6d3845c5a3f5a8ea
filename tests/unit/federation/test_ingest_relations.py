"""Events from other servers enter the relations and search indexes in their own transaction,
rejected ones never do, and a federated redaction takes its target out of both."""

from __future__ import annotations

from pathlib import Path

from dendrite_lite.storage import events as events_table
from dendrite_lite.storage import relations as relations_table
from dendrite_lite.storage import search as search_table
from dendrite_lite.storage.search import SEARCH_KEYS, SearchQuery
from tests.unit.federation.ingest_env import A, ALICE, B, BOB, Env, open_env


async def _state(env: Env, root: str) -> tuple[list[str], list[str]]:
    """(ids of root's thread replies, bodies found for "wallaby")."""
    rels = await env.storage.db.read(
        lambda c: relations_table.select_relations_to(c, [root], ["m.thread"])
    )
    query = SearchQuery("wallaby", [env.room_id], tuple(SEARCH_KEYS.values()), by_rank=False)
    hits = await env.storage.db.read(lambda c: search_table.select_matches(c, query, 10))
    return [r.event_id for r in rels], [h.highlighted.replace("\x02", "").replace("\x03", "") for h in hits]


async def test_federated_relations_and_search_rows(tmp_path: Path) -> None:
    env = await open_env(tmp_path, "12")
    try:
        root = env.dag.add(ALICE, "m.room.message", {"msgtype": "m.text", "body": "wallaby root"})
        reply = env.dag.add(BOB, "m.room.message", {
            "body": "wallaby reply", "m.relates_to": {"rel_type": "m.thread", "event_id": root.event_id}})
        await env.send(A, root)
        await env.send(B, reply)
        assert await _state(env, root.event_id) == ([reply.event_id], ["wallaby reply", "wallaby root"])
        # A sender who is not in the room: rejected, so neither related nor searchable.
        intruder = env.dag.add("@mallory:remote.b", "m.room.message", {
            "body": "wallaby intruder", "m.relates_to": {"rel_type": "m.thread", "event_id": root.event_id}})
        await env.send(B, intruder)
        held = await env.storage.db.read(lambda c: events_table.select_event(c, intruder.event_id))
        assert held is not None and held.event.rejected_reason is not None
        assert await _state(env, root.event_id) == ([reply.event_id], ["wallaby reply", "wallaby root"])
        redaction = env.dag.add(BOB, "m.room.redaction", {"redacts": reply.event_id})
        await env.send(B, redaction)
        assert await _state(env, root.event_id) == ([], ["wallaby root"])
    finally:
        await env.storage.close()
