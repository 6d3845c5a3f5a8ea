-- 0016: pushers and their delivery queue, the actions of each notification (GET /notifications),
-- content reports, and OpenID tokens (issue 13 item 10).

-- The actions array of the push rule that matched (JSON), for /notifications. NULL when they
-- are the ones the highlight flag implies (storage.notifications.implied_actions: a plain
-- message's, a mention's), so most rows carry no JSON, and on rows from before this migration.
ALTER TABLE event_push_actions ADD COLUMN actions TEXT;

-- One row per (app_id, pushkey, user): push.md §Pushers (POST /pushers/set).
CREATE TABLE pushers (
    user_id TEXT NOT NULL,
    app_id TEXT NOT NULL,
    pushkey TEXT NOT NULL,
    kind TEXT NOT NULL,                           -- http
    app_display_name TEXT NOT NULL,
    device_display_name TEXT NOT NULL,
    profile_tag TEXT,
    lang TEXT NOT NULL,
    data TEXT NOT NULL,                           -- JSON object, url included
    pushkey_ts INTEGER NOT NULL,                  -- ms; the gateway is sent seconds
    PRIMARY KEY (app_id, pushkey, user_id)
) WITHOUT ROWID;
CREATE INDEX pushers_user ON pushers (user_id);

-- Notifications waiting to be delivered to the push gateway of a user with a pusher. Written
-- in the event's own transaction (with its event_push_actions row), deleted once every pusher
-- of the user was tried, so a restart resumes delivery instead of losing it.
CREATE TABLE push_queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    stream_ordering INTEGER NOT NULL,
    actions TEXT NOT NULL                         -- JSON array
);

-- POST /rooms/{roomId}/report[/{eventId}] and /users/{userId}/report (report_content.md):
-- kept for the server admin; event_id and target_user_id are NULL when not reported.
CREATE TABLE content_reports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    reporter TEXT NOT NULL,
    room_id TEXT,
    event_id TEXT,
    target_user_id TEXT,
    reason TEXT,
    score INTEGER,
    received_ts INTEGER NOT NULL
);

-- POST /user/{userId}/openid/request_token: tokens another server checks through
-- GET /_matrix/federation/v1/openid/userinfo (openid.md).
CREATE TABLE openid_tokens (
    token TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL,
    expires_ts INTEGER NOT NULL
) WITHOUT ROWID;
