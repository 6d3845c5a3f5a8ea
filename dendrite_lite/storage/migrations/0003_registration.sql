-- 0003: registration tokens (spec: "Token-authenticated registration", m.login.registration_token).
-- The token itself is stored, not a hash: admins list and share them, like Synapse's admin API.

CREATE TABLE registration_tokens (
    token TEXT PRIMARY KEY NOT NULL,            -- opaque, [A-Za-z0-9._~-]{1,64}
    uses_allowed INTEGER,                       -- NULL: unlimited
    completed INTEGER NOT NULL DEFAULT 0,       -- registrations that used it
    expiry_ts INTEGER,                          -- NULL: never expires; else ms since the epoch
    created_ts INTEGER NOT NULL
) WITHOUT ROWID;
