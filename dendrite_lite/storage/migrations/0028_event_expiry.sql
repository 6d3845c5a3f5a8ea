-- 0028 (issue 15, SyTest "Ephemeral messages ... are correctly expired"): MSC2228 self-destructing
-- events. An event whose content carries `org.matrix.self_destruct_after` (a timestamp in ms) is
-- scheduled here when persisted; at that time its stored JSON is replaced by its redacted form,
-- as Synapse's event_expiry does. A table, not a timer, so the schedule survives a restart.
CREATE TABLE event_expiry (
    event_id TEXT PRIMARY KEY NOT NULL,
    expiry_ts INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX event_expiry_ts ON event_expiry (expiry_ts);
