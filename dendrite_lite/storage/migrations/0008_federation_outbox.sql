-- The persistent federation outbox and per-destination health (federation/sender.py).

-- One row per (destination, PDU or persisted EDU) still to deliver. A PDU row is written in the
-- same transaction as its event, so an event acknowledged to a client is never lost for a
-- destination; the row is deleted only once the destination answered 200 to a transaction
-- carrying it. `position` orders a destination's queue (commit order).
CREATE TABLE federation_outbox (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    destination TEXT NOT NULL,
    event_id TEXT,
    edu_type TEXT,
    edu_content TEXT,
    queued_ts INTEGER NOT NULL,
    CHECK ((event_id IS NULL) != (edu_type IS NULL))
);
CREATE INDEX federation_outbox_destination ON federation_outbox (destination, position);

-- What the sender knows about each destination: the TUI and `doctor` show it, and the backoff
-- survives a restart (a server that was down an hour ago is not hammered on start).
CREATE TABLE federation_destinations (
    destination TEXT PRIMARY KEY,
    last_success_ts INTEGER,
    last_failure_ts INTEGER,
    last_failure_reason TEXT,
    retry_interval_ms INTEGER NOT NULL DEFAULT 0,
    next_retry_ts INTEGER NOT NULL DEFAULT 0
);
