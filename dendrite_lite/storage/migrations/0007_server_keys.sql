-- 0007: other servers' signing keys (federation keyring) and the key responses we serve as a notary.

-- One row per (server, key id), from the server itself or a notary. Current keys carry the
-- validity we computed (valid_until_ts capped at fetch time + 7 days); keys seen in
-- old_verify_keys carry expired_ts and are good only for events signed before it.
CREATE TABLE server_keys (
    server_name TEXT NOT NULL,
    key_id TEXT NOT NULL,                 -- "ed25519:abc"
    verify_key TEXT NOT NULL,             -- unpadded base64 public key
    valid_until_ts INTEGER,
    expired_ts INTEGER,
    fetched_ts INTEGER NOT NULL,
    source TEXT NOT NULL,                 -- the server that told us
    PRIMARY KEY (server_name, key_id)
) WITHOUT ROWID;

-- The server's own signed /_matrix/key/v2/server answers, fetched directly, kept verbatim so a
-- notary answer can carry the original signature; one row per key id the answer lists.
CREATE TABLE server_key_responses (
    server_name TEXT NOT NULL,
    key_id TEXT NOT NULL,
    response_json TEXT NOT NULL,
    valid_until_ts INTEGER NOT NULL,      -- as published (not capped)
    fetched_ts INTEGER NOT NULL,
    PRIMARY KEY (server_name, key_id)
) WITHOUT ROWID;
