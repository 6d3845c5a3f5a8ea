-- 0040: email pushers (push.md §Pushers, kind "email"; users/email_notifier.py). Each has how far
-- it has gone through its user's notifications (stream position: everything at or below was
-- mailed or passed over), the token of its unsubscribe link, and the last mail per room (the
-- throttle). Rows go with their pusher (ON DELETE CASCADE): deleting the pusher, the address or
-- the account ends its mail.
CREATE TABLE email_pushers (
    app_id TEXT NOT NULL,
    pushkey TEXT NOT NULL,
    user_id TEXT NOT NULL,
    last_stream_ordering INTEGER NOT NULL,
    unsubscribe_token TEXT NOT NULL UNIQUE,
    PRIMARY KEY (app_id, pushkey, user_id),
    FOREIGN KEY (app_id, pushkey, user_id) REFERENCES pushers (app_id, pushkey, user_id)
        ON DELETE CASCADE
) WITHOUT ROWID;

CREATE TABLE email_pusher_rooms (
    app_id TEXT NOT NULL,
    pushkey TEXT NOT NULL,
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    last_sent_ts INTEGER NOT NULL,                -- ms
    PRIMARY KEY (app_id, pushkey, user_id, room_id),
    FOREIGN KEY (app_id, pushkey, user_id) REFERENCES email_pushers (app_id, pushkey, user_id)
        ON DELETE CASCADE
) WITHOUT ROWID;
