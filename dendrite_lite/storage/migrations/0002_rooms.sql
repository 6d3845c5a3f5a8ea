-- 0002: rooms, events, the room DAG, state snapshots, current state, transaction ids.
-- Timestamps are milliseconds since the Unix epoch.

CREATE TABLE rooms (
    room_id TEXT PRIMARY KEY NOT NULL,
    room_version TEXT NOT NULL,
    creator TEXT NOT NULL,
    is_public INTEGER NOT NULL DEFAULT 0,        -- listed in the public room directory
    created_ts INTEGER NOT NULL,
    -- The state group of the state after the forward extremities when there is exactly one;
    -- NULL while the room has no events we hold (a remote room being joined).
    current_state_group INTEGER
) WITHOUT ROWID;

-- Every event we hold. stream_ordering is the room-event stream: events we persist live get
-- increasing positions (sync tokens point into it); events fetched from the past by backfill get
-- decreasing negative positions, so they sort before everything and never wake a sync.
CREATE TABLE events (
    stream_ordering INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    room_id TEXT NOT NULL,
    room_version TEXT NOT NULL,
    type TEXT NOT NULL,
    state_key TEXT,
    sender TEXT NOT NULL,
    depth INTEGER NOT NULL,
    origin_server_ts INTEGER NOT NULL,
    json TEXT NOT NULL,                          -- the PDU as received/built (canonical JSON)
    -- An outlier is held for its content (auth chains, invites) but is not part of the room's
    -- timeline: it has no state group and is never served by /messages or /sync timelines.
    outlier INTEGER NOT NULL DEFAULT 0,
    rejected_reason TEXT,                        -- set when the event failed auth
    soft_failed INTEGER NOT NULL DEFAULT 0,      -- passed auth but not against current state
    state_group INTEGER,                         -- the state AFTER this event
    txn_user_id TEXT,                            -- for /send idempotency and the sender's echo
    txn_device_id TEXT,
    txn_id TEXT
);
CREATE INDEX events_room_stream ON events (room_id, stream_ordering);
CREATE UNIQUE INDEX events_txn ON events (txn_user_id, txn_device_id, txn_id)
    WHERE txn_id IS NOT NULL;

CREATE TABLE event_edges (
    event_id TEXT NOT NULL,
    prev_event_id TEXT NOT NULL,
    PRIMARY KEY (event_id, prev_event_id)
) WITHOUT ROWID;
CREATE INDEX event_edges_prev ON event_edges (prev_event_id);

CREATE TABLE event_auth (
    event_id TEXT NOT NULL,
    auth_event_id TEXT NOT NULL,
    PRIMARY KEY (event_id, auth_event_id)
) WITHOUT ROWID;

CREATE TABLE forward_extremities (
    room_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (room_id, event_id)
) WITHOUT ROWID;

-- State snapshots, deduplicated as deltas: a group holds only the entries that differ from its
-- prev_group, and chains are kept short (delta_depth) so loading a group stays cheap.
-- An entry with event_id NULL removes a key the parent had.
CREATE TABLE state_groups (
    id INTEGER PRIMARY KEY,
    room_id TEXT NOT NULL,
    prev_group INTEGER REFERENCES state_groups (id),
    delta_depth INTEGER NOT NULL
);
CREATE TABLE state_group_entries (
    state_group INTEGER NOT NULL REFERENCES state_groups (id),
    type TEXT NOT NULL,
    state_key TEXT NOT NULL,
    event_id TEXT,
    PRIMARY KEY (state_group, type, state_key)
) WITHOUT ROWID;

-- The room's state now, for fast reads (membership lists, joined rooms, /state).
CREATE TABLE current_state (
    room_id TEXT NOT NULL,
    type TEXT NOT NULL,
    state_key TEXT NOT NULL,
    event_id TEXT NOT NULL,
    membership TEXT,                             -- content.membership of m.room.member events
    PRIMARY KEY (room_id, type, state_key)
) WITHOUT ROWID;
CREATE INDEX current_state_members ON current_state (state_key, type, membership);

-- m.room.redaction events and what they redact; the redacted event's JSON is kept unchanged
-- (and served redacted), so a redaction that later turns out invalid can be undone.
CREATE TABLE redactions (
    event_id TEXT PRIMARY KEY NOT NULL,
    redacts TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX redactions_redacts ON redactions (redacts);
