-- 0027 (issue 16 admin rooms): rooms a server admin blocked (Synapse's admin API
-- PUT /_synapse/admin/v1/rooms/{roomId}/block, or DELETE .../rooms/{roomId} with block=true).
-- Local users cannot join or be invited, and other servers cannot join through us. A room may
-- be blocked before this server knows it, so there is no reference to `rooms`.
CREATE TABLE blocked_rooms (
    room_id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL,                       -- the admin who blocked it ('' on the admin socket)
    blocked_ts INTEGER NOT NULL
) WITHOUT ROWID;
