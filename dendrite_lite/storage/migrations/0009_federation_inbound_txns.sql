-- Transactions other servers sent us (PUT /_matrix/federation/v1/send/{txnId}), so a retried
-- transaction gets the answer of the first one without being processed again
-- (api/federation/transactions.py, federation/transactions.py). Rows older than a day are
-- deleted: a sender retries for minutes or hours, not days.
CREATE TABLE federation_inbound_txns (
    origin TEXT NOT NULL,
    txn_id TEXT NOT NULL,
    response_json TEXT NOT NULL,
    received_ts INTEGER NOT NULL,
    PRIMARY KEY (origin, txn_id)
);
CREATE INDEX federation_inbound_txns_received ON federation_inbound_txns (received_ts);
