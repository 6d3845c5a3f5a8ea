-- 0004: what /sync, /messages and history visibility need beyond 0002.

-- A user's membership (and history visibility) changes in one room, newest first: history
-- visibility asks "did this user join after that event?" without scanning the room's timeline.
-- stream_ordering is the rowid, so the index carries it.
CREATE INDEX events_room_type_state_key ON events (room_id, type, state_key);

-- /timestamp_to_event: the event closest to a time in one room.
CREATE INDEX events_room_ts ON events (room_id, origin_server_ts);

-- Filters uploaded with POST /user/{userId}/filter. filter_id is per user and counts up from 0;
-- clients see it as a string. The JSON is stored as uploaded (canonical), so identical uploads
-- get the same id back.
CREATE TABLE user_filters (
    user_id TEXT NOT NULL,
    filter_id INTEGER NOT NULL,
    filter_json TEXT NOT NULL,
    PRIMARY KEY (user_id, filter_id)
) WITHOUT ROWID;
CREATE INDEX user_filters_json ON user_filters (user_id, filter_json);

-- One row per (local user, event) whose push rules said "notify": the unread counts in /sync
-- are the rows after the user's read receipt in that room. Written in the event's own
-- transaction (rooms/notifications.py), so a /sync woken by the commit already counts it.
CREATE TABLE event_push_actions (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    stream_ordering INTEGER NOT NULL,
    highlight INTEGER NOT NULL,
    PRIMARY KEY (user_id, room_id, stream_ordering)
) WITHOUT ROWID;
