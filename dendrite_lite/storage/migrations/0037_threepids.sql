-- 0037: third-party identifiers (email) kept by the homeserver itself (storage/threepids.py).
--
-- threepid_validation_sessions: one row per /requestToken session (client-server-api
-- §Adding Account Administrative Contact Information, request_email_validation.yaml). The
-- emailed link proves the address; `token` is kept as its SHA-256, like access tokens. A session
-- is found again by (medium, address, client_secret, purpose), so a retried request with the
-- same send_attempt gets the same sid without a second email. `purpose` (register | add |
-- password) is the endpoint that started it: a link mailed as "confirm your new account" must
-- not reset a password. Rows go when used or once expired.
CREATE TABLE threepid_validation_sessions (
    sid TEXT PRIMARY KEY NOT NULL,
    client_secret TEXT NOT NULL,
    medium TEXT NOT NULL,
    address TEXT NOT NULL,  -- normalised (email: lower case)
    purpose TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    send_attempt INTEGER NOT NULL,
    next_link TEXT,
    created_ts INTEGER NOT NULL,
    validated_ts INTEGER,  -- NULL until the link is followed
    expires_ts INTEGER NOT NULL
) WITHOUT ROWID;
CREATE UNIQUE INDEX threepid_validation_sessions_key
    ON threepid_validation_sessions (medium, address, client_secret, purpose);
CREATE INDEX threepid_validation_sessions_expiry ON threepid_validation_sessions (expires_ts);

-- user_threepids: the addresses an account has (GET /account/3pid, login with
-- m.id.thirdparty, password reset). One account per address, as Synapse's medium_address index.
CREATE TABLE user_threepids (
    medium TEXT NOT NULL,
    address TEXT NOT NULL,  -- normalised (email: lower case)
    user_id TEXT NOT NULL,
    validated_at INTEGER NOT NULL,
    added_at INTEGER NOT NULL,
    PRIMARY KEY (medium, address)
) WITHOUT ROWID;
CREATE INDEX user_threepids_user ON user_threepids (user_id);
