-- 0035: MSC4140 delayed events (rooms.delayed_events). An event a client asked to be sent later
-- waits here until send_ts; a table, not a timer, so the schedule survives a restart. A row is
-- deleted once its event is sent (or sending failed), cancelled, or overridden by someone else's
-- state. delay_id is random and unguessable: cancel/restart/send take it without a token.
CREATE TABLE delayed_events (
    delay_id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL,
    device_id TEXT,
    txn_id TEXT,  -- the client's PUT /send txnId: a retried request gets the same delay_id
    room_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    state_key TEXT,  -- NULL: a message event
    content TEXT NOT NULL,  -- JSON
    delay_ms INTEGER NOT NULL,
    send_ts INTEGER NOT NULL  -- restart moves it to now + delay_ms
) WITHOUT ROWID;
CREATE INDEX delayed_events_send_ts ON delayed_events (send_ts);
CREATE INDEX delayed_events_user ON delayed_events (user_id, send_ts);
CREATE INDEX delayed_events_state ON delayed_events (room_id, event_type, state_key)
    WHERE state_key IS NOT NULL;
