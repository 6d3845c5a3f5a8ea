-- 0004: local room aliases (the room directory) and rooms users have forgotten.

-- Aliases on our server name; an alias points at exactly one room, a room may have many.
CREATE TABLE room_aliases (
    alias TEXT PRIMARY KEY NOT NULL,             -- "#name:our.server"
    room_id TEXT NOT NULL,
    creator TEXT NOT NULL,                       -- the user who created it (may delete it)
    created_ts INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX room_aliases_room ON room_aliases (room_id);

-- POST /forget. The membership event the user forgot is recorded rather than a flag, so any later
-- membership change (re-join, re-invite, knock) un-forgets the room with no extra write.
CREATE TABLE forgotten_rooms (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    member_event_id TEXT NOT NULL,
    PRIMARY KEY (user_id, room_id)
) WITHOUT ROWID;
