-- 0006: per-user data and ephemeral streams: account data (incl. room tags, m.fully_read and the
-- push rules document), read receipts, presence. Typing is in memory only.
-- Each table carries its own stream: stream_id is allocated as MAX(stream_id) + 1 inside the
-- writing transaction (one writer, so no two rows get the same value) and rows are only ever
-- updated in place, never deleted, so positions handed out in sync tokens survive restarts.

-- Global (room_id = '') and per-room account data, one row per (user, room, type).
-- m.push_rules holds the user's push rules document (push/ruleset.py), not the full ruleset:
-- the server defaults are added when it is read.
CREATE TABLE account_data (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,                        -- '' for global account data
    type TEXT NOT NULL,
    content TEXT NOT NULL,                        -- JSON object
    stream_id INTEGER NOT NULL,
    PRIMARY KEY (user_id, room_id, type)
) WITHOUT ROWID;
CREATE INDEX account_data_user_stream ON account_data (user_id, stream_id);
CREATE INDEX account_data_stream ON account_data (stream_id);

-- The latest receipt per (room, type, user, thread); thread_id '' is an unthreaded receipt.
CREATE TABLE receipts (
    room_id TEXT NOT NULL,
    receipt_type TEXT NOT NULL,                   -- m.read | m.read.private
    user_id TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    ts INTEGER NOT NULL,
    stream_id INTEGER NOT NULL,
    PRIMARY KEY (room_id, receipt_type, user_id, thread_id)
) WITHOUT ROWID;
CREATE INDEX receipts_room_stream ON receipts (room_id, stream_id);
CREATE INDEX receipts_stream ON receipts (stream_id);
CREATE INDEX receipts_user ON receipts (user_id, room_id);

-- The last presence state each user was put in. last_active_ts is refreshed in memory between
-- state changes and written with the next change, so activity does not cost a write each time.
CREATE TABLE presence (
    user_id TEXT PRIMARY KEY NOT NULL,
    state TEXT NOT NULL,                          -- online | unavailable | offline
    status_msg TEXT,
    last_active_ts INTEGER NOT NULL,
    currently_active INTEGER NOT NULL DEFAULT 0,
    stream_id INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX presence_stream ON presence (stream_id);
