-- 0013: the server name this database belongs to (one row). User ids, room aliases, room ids and
-- event signatures all carry the name, so a server started on the same database under another
-- server.server_name would mix two identities; the server refuses to start instead
-- (storage/server_identity.py).
CREATE TABLE server_identity (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    server_name TEXT NOT NULL
);
-- A database from before this migration: its accounts are all local (@localpart:server_name,
-- and a localpart has no ':'), so the oldest account names the server for certain. Without
-- accounts nothing does: the row is then written at the next start, with the name configured
-- at that time (server_identity.claim_server_name).
INSERT INTO server_identity (id, server_name)
    SELECT 1, substr(user_id, instr(user_id, ':') + 1) FROM accounts
    ORDER BY created_ts, user_id LIMIT 1;
