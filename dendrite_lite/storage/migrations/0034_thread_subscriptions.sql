-- 0034 (issue 18): thread subscriptions (MSC4306), sent to sliding sync clients by its
-- io.element.msc4308.thread_subscriptions extension and the /thread_subscriptions companion.
-- One row per (user, thread) the user ever subscribed to, holding its latest state: an
-- unsubscription keeps the row (subscribed = 0), because clients must learn of it and because
-- a later automatic subscription is refused when the unsubscription already saw its cause event.
-- stream_id is the position of the row's latest change in the user-data stream of thread
-- subscriptions (MAX(stream_id) + 1 inside the writing transaction, as account data does); it is
-- also the `bump_stamp` clients compare. Only the latest state is kept: MSC4308 never needs
-- intermediate ones.
CREATE TABLE thread_subscriptions (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    root_id TEXT NOT NULL,                          -- the thread root's event id
    subscribed INTEGER NOT NULL,                    -- 1 subscribed, 0 unsubscribed
    automatic INTEGER NOT NULL,                     -- the subscription was a client's automatic one
    stream_id INTEGER NOT NULL,
    -- When unsubscribed: the room's newest stream position and depth at that moment. An
    -- automatic subscription whose cause event is not newer than these is refused (409).
    unsubscribed_at_stream INTEGER,
    unsubscribed_at_depth INTEGER,
    PRIMARY KEY (user_id, room_id, root_id)
) WITHOUT ROWID;
CREATE INDEX thread_subscriptions_user_stream ON thread_subscriptions (user_id, stream_id);
CREATE INDEX thread_subscriptions_stream ON thread_subscriptions (stream_id);
