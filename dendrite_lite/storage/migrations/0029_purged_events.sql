-- 0029 (issue 16 admin purge_history): the events a history purge kept out of the timeline
-- (state, local users' events: storage/purge.py) with the state group they had. Backfill
-- (federation/backfill.py) puts such an event back into the timeline when another server sends
-- it again, and uses the state after it for the events that follow it; the row goes then.
CREATE TABLE purged_events (
    event_id TEXT PRIMARY KEY NOT NULL,
    state_group INTEGER NOT NULL REFERENCES state_groups (id)
) WITHOUT ROWID;
