-- 0038: third-party identifiers bound at identity servers through this homeserver
-- (storage/threepid_bindings.py; users/threepid_bindings.py). POST /account/3pid/bind asks an
-- identity server to publish "address -> user"; the spec asks homeservers to "track successful
-- binds so they can be unbound later": /account/3pid/unbind and /account/3pid/delete without an
-- id_server, and deactivation, unbind at every identity server recorded here. A row goes once
-- the identity server unbound the address (or said it cannot).
CREATE TABLE threepid_bindings (
    user_id TEXT NOT NULL,
    medium TEXT NOT NULL,
    address TEXT NOT NULL,  -- as the identity server answered the bind
    id_server TEXT NOT NULL,  -- host[:port], as the client named it
    bound_ts INTEGER NOT NULL,
    PRIMARY KEY (user_id, medium, address, id_server)
) WITHOUT ROWID;
