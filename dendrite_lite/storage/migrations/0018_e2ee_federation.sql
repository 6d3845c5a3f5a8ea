-- 0018: end-to-end encryption over federation (server-server-api.md §Device Management,
-- §End-to-End Encryption, §Send-to-device messaging). Other servers' users' device keys and
-- cross-signing keys live in e2e_device_keys and e2e_cross_signing_keys (0014), keyed by user
-- id like ours; these tables say which of those lists we keep up to date, and how far our own
-- device list changes and other servers' to-device messages have been handled.

-- Remote users whose device list we cache (fetched while we share a room with them, then kept
-- up to date by their m.device_list_update EDUs). stream_id: the last update applied (NULL when
-- the list came from /user/keys/query, which names none: the next update then resyncs).
-- stale = 1: the next /keys/query asks their server again.
CREATE TABLE remote_device_lists (
    user_id TEXT PRIMARY KEY,
    stream_id INTEGER,
    stale INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- How far device_list_changes has been turned into outbound m.device_list_update and
-- m.signing_key_update EDUs (one row, id = 1): a change committed but not yet queued when the
-- process died is queued at the next start.
CREATE TABLE device_list_outbound (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    stream_id INTEGER NOT NULL
);
INSERT INTO device_list_outbound (id, stream_id)
    SELECT 1, COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'device_list_changes'), 0);

-- m.direct_to_device message ids already delivered to our devices, per origin server: a
-- transaction retried under a new txnId does not deliver the messages twice. Pruned after a day.
CREATE TABLE to_device_inbound_ids (
    origin TEXT NOT NULL,
    message_id TEXT NOT NULL,
    received_ts INTEGER NOT NULL,
    PRIMARY KEY (origin, message_id)
) WITHOUT ROWID;
CREATE INDEX to_device_inbound_ids_received ON to_device_inbound_ids (received_ts);
