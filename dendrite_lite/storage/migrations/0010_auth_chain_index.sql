-- Auth chain index (events/state_res/chain_index.py, storage/auth_chains.py): each event's
-- position on a chain of the auth DAG, and its reach (per chain, the highest seq among the event
-- and its auth ancestors). Filled as events are stored over federation and on demand before a
-- state resolution (events stored before this migration, or by the local pipeline), never
-- changed: an event's auth events never change.
CREATE TABLE event_auth_chain_positions (
    event_id TEXT PRIMARY KEY,
    chain_id INTEGER NOT NULL,
    seq INTEGER NOT NULL
);
CREATE UNIQUE INDEX event_auth_chain_positions_chain_seq
    ON event_auth_chain_positions (chain_id, seq);
CREATE TABLE event_auth_chain_reach (
    event_id TEXT NOT NULL,
    chain_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (event_id, chain_id)
) WITHOUT ROWID;
-- The highest seq a set of events reaches on one chain: walked from the top of the chain.
CREATE INDEX event_auth_chain_reach_chain_seq ON event_auth_chain_reach (chain_id, seq);
