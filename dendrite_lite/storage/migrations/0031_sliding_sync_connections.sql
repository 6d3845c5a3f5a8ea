-- 0031 (issue 18, MSC4186 simplified sliding sync): what each sliding sync connection has been
-- sent, kept in the database so a client's `pos` still works after a restart (a full resync of
-- Element X's room list after every upgrade is what this avoids).
-- A connection is one (user, device, conn_id). Each response that changes what the client has
-- been sent gets a new position; a room's row says up to which room-stream position its timeline
-- was sent, with which timeline_limit and which required_state. The rows of a position are a full
-- copy, so a client that retries an older `pos` (its response was lost) gets exactly that view,
-- and positions other than the one a client uses are deleted with their rows.
CREATE TABLE sliding_sync_connections (
    conn_key INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    conn_id TEXT NOT NULL,
    created_ts INTEGER NOT NULL,
    last_used_ts INTEGER NOT NULL,
    UNIQUE (user_id, device_id, conn_id)
);
CREATE TABLE sliding_sync_positions (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    conn_key INTEGER NOT NULL REFERENCES sliding_sync_connections (conn_key) ON DELETE CASCADE
);
CREATE INDEX sliding_sync_positions_conn ON sliding_sync_positions (conn_key);
CREATE TABLE sliding_sync_rooms (
    position INTEGER NOT NULL REFERENCES sliding_sync_positions (position) ON DELETE CASCADE,
    room_id TEXT NOT NULL,
    sent_to INTEGER NOT NULL,
    timeline_limit INTEGER NOT NULL,
    required_state TEXT NOT NULL,
    PRIMARY KEY (position, room_id)
) WITHOUT ROWID;
