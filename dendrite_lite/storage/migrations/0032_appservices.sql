-- Application services (appservice/): what waits for each AS, its transactions, its room lists.

-- One row per (AS, event) still to deliver, written in the event's own transaction, so an event
-- is never lost for an AS; deleted once the AS answered 200 to a transaction carrying it.
-- `position` is the send order. Persisted EDUs (to-device messages, MSC2409) use edu_type.
CREATE TABLE appservice_outbox (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    as_id TEXT NOT NULL,
    event_id TEXT,
    edu_type TEXT,
    edu_content TEXT,
    queued_ts INTEGER NOT NULL,
    CHECK ((event_id IS NULL) != (edu_type IS NULL))
);
CREATE INDEX appservice_outbox_as ON appservice_outbox (as_id, position);

-- Per AS: transaction ids (integers, increasing across restarts), the transaction in flight
-- (its id and the last outbox position it carries: resent with the same id after a restart,
-- so the AS can drop a duplicate), and the delivery health doctor shows.
CREATE TABLE appservice_state (
    as_id TEXT PRIMARY KEY,
    last_txn_id INTEGER NOT NULL DEFAULT 0,
    pending_txn_id INTEGER NOT NULL DEFAULT 0,
    pending_up_to INTEGER NOT NULL DEFAULT 0,
    last_success_ts INTEGER,
    last_failure_ts INTEGER,
    last_failure_reason TEXT,
    retry_interval_ms INTEGER NOT NULL DEFAULT 0,
    next_retry_ts INTEGER NOT NULL DEFAULT 0
);

-- Rooms an AS published in its own room list (client-server §Application service room
-- directories: PUT /directory/list/appservice/{networkId}/{roomId}).
CREATE TABLE appservice_room_list (
    as_id TEXT NOT NULL,
    network_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    PRIMARY KEY (as_id, network_id, room_id)
);
CREATE INDEX appservice_room_list_room ON appservice_room_list (room_id);
