-- 0014: end-to-end encryption (client-server-api/modules/end_to_end_encryption.md,
-- send_to_device.md): device keys, one-time and fallback keys, the device list stream, the
-- to-device inbox, cross-signing keys and their signatures, server-side key backups.
-- Key rows are keyed by user id alone (no foreign key to devices or accounts) so that other
-- servers' users' keys, fetched over federation, can live in the same tables.

-- The signed device keys object as the device uploaded it (without `unsigned`).
CREATE TABLE e2e_device_keys (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    key_json TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id)
) WITHOUT ROWID;

-- Unclaimed one-time keys. The rowid is the upload order: /keys/claim gives the oldest first.
CREATE TABLE e2e_one_time_keys (
    id INTEGER PRIMARY KEY,
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    key_id TEXT NOT NULL,
    key_json TEXT NOT NULL
);
CREATE UNIQUE INDEX e2e_one_time_keys_key
    ON e2e_one_time_keys (user_id, device_id, algorithm, key_id);

-- At most one fallback key per device and algorithm; `used` once /keys/claim handed it out
-- (it keeps being handed out until the device replaces it).
CREATE TABLE e2e_fallback_keys (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    key_id TEXT NOT NULL,
    key_json TEXT NOT NULL,
    used INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, device_id, algorithm)
) WITHOUT ROWID;

-- The device list stream: one row per change of a user's devices (keys uploaded or changed,
-- device deleted) or cross-signing keys (device_id NULL). stream_id is the stream position in
-- sync tokens; AUTOINCREMENT keeps positions from ever being reused after old rows are pruned.
-- A user's previous row is the `prev_id` of the federation m.device_list_update EDU.
CREATE TABLE device_list_changes (
    stream_id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    device_id TEXT
);
CREATE INDEX device_list_changes_user ON device_list_changes (user_id, stream_id);

-- To-device messages waiting for a local device, deleted once a /sync acknowledges them (its
-- `since` is at or past the row's stream_id). AUTOINCREMENT: the stream position must not go
-- back when the newest rows are deleted, or a client's token would point past the stream.
CREATE TABLE to_device_inbox (
    stream_id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    message_json TEXT NOT NULL                  -- {"sender", "type", "content"}
);
CREATE INDEX to_device_inbox_device ON to_device_inbox (user_id, device_id, stream_id);

-- PUT /sendToDevice transaction ids already handled, per sending device (idempotency), pruned
-- after a day.
CREATE TABLE to_device_txns (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    txn_id TEXT NOT NULL,
    created_ts INTEGER NOT NULL,
    PRIMARY KEY (user_id, device_id, txn_id)
) WITHOUT ROWID;
CREATE INDEX to_device_txns_created ON to_device_txns (created_ts);

-- Cross-signing keys: key_type is master, self_signing or user_signing; key_json as uploaded.
CREATE TABLE e2e_cross_signing_keys (
    user_id TEXT NOT NULL,
    key_type TEXT NOT NULL,
    key_json TEXT NOT NULL,
    PRIMARY KEY (user_id, key_type)
) WITHOUT ROWID;

-- Signatures uploaded through /keys/signatures/upload: of a device key (key_id is the device
-- id) or of a cross-signing key (key_id is its base64 public key) of `user_id`, by a key of
-- `signer_user_id`.
CREATE TABLE e2e_cross_signing_signatures (
    user_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    signer_user_id TEXT NOT NULL,
    signer_key_id TEXT NOT NULL,
    signature TEXT NOT NULL,
    PRIMARY KEY (user_id, key_id, signer_user_id, signer_key_id)
) WITHOUT ROWID;

-- Server-side key backups (end_to_end_encryption.md §Server-side key backups). A deleted
-- backup keeps its row (deleted = 1) so its version is never handed out again and deleting it
-- twice succeeds; its keys go. etag changes whenever the backup's keys change.
CREATE TABLE e2e_room_key_backups (
    user_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    algorithm TEXT NOT NULL,
    auth_data TEXT NOT NULL,
    etag INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, version)
) WITHOUT ROWID;

CREATE TABLE e2e_room_keys (
    user_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    room_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    first_message_index INTEGER NOT NULL,
    forwarded_count INTEGER NOT NULL,
    is_verified INTEGER NOT NULL,
    session_data TEXT NOT NULL,
    PRIMARY KEY (user_id, version, room_id, session_id)
) WITHOUT ROWID;
