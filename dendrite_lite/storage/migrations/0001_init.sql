-- 0001: accounts, devices and access tokens.
-- Shipped migrations are never edited; later changes go in 0002_*.sql and onwards.
-- Timestamps are milliseconds since the Unix epoch (the unit Matrix uses everywhere).

CREATE TABLE accounts (
    user_id TEXT PRIMARY KEY NOT NULL,          -- full @localpart:server_name
    password_hash TEXT,                         -- argon2id PHC string; NULL: no password login
    is_admin INTEGER NOT NULL DEFAULT 0,
    is_guest INTEGER NOT NULL DEFAULT 0,
    deactivated INTEGER NOT NULL DEFAULT 0,
    created_ts INTEGER NOT NULL,
    displayname TEXT,
    avatar_url TEXT
) WITHOUT ROWID;

CREATE TABLE devices (
    user_id TEXT NOT NULL REFERENCES accounts (user_id) ON DELETE CASCADE,
    device_id TEXT NOT NULL,
    display_name TEXT,
    last_seen_ts INTEGER,
    last_seen_ip TEXT,
    created_ts INTEGER NOT NULL,
    PRIMARY KEY (user_id, device_id)
) WITHOUT ROWID;

-- One row per access token (and the refresh token issued with it, if any). Only SHA-256 hashes
-- are stored, so a leaked database or backup does not hand out sessions.
-- Deleting a device deletes its tokens (the foreign key cascades), which is what the spec asks
-- of DELETE /devices/{deviceId} and logout.
CREATE TABLE access_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,       -- hex SHA-256 of the access token
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    created_ts INTEGER NOT NULL,
    expires_ts INTEGER,                         -- NULL: never expires (clients without refresh)
    refresh_token_hash TEXT UNIQUE,             -- hex SHA-256 of the refresh token, if issued
    refresh_expires_ts INTEGER,                 -- NULL: the refresh token does not expire
    -- The pair this one replaced via /refresh. The spec keeps the old refresh token valid until
    -- the new access or refresh token is first used; then the old row is deleted.
    previous_token_hash TEXT,
    -- Set when the server ends the session softly (expired or admin action): requests get
    -- M_UNKNOWN_TOKEN with soft_logout=true, so the client re-logs in keeping its device and keys.
    soft_logged_out INTEGER NOT NULL DEFAULT 0,
    last_used_ts INTEGER,
    FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
) WITHOUT ROWID;

CREATE INDEX access_tokens_device ON access_tokens (user_id, device_id);
