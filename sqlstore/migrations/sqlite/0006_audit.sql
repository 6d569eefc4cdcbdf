-- The audit log made tamper-evident: its entries are the leaves of a Merkle tree (RFC 6962), whose
-- hashes are stored here as Go's tlog numbers them (a hash's index encodes its level and position),
-- written in the same transaction as the entry that adds them.
CREATE TABLE audit_hashes (
    idx  BIGINT NOT NULL PRIMARY KEY,
    hash BLOB  NOT NULL
);

-- Signed checkpoints of the tree: its size and root hash, signed as a note with an audit key.
CREATE TABLE audit_checkpoints (
    size      BIGINT NOT NULL PRIMARY KEY,
    note      TEXT   NOT NULL,
    signed_at BIGINT NOT NULL
);

-- The keys that sign checkpoints, in the order they were added (the newest signs). signer, the
-- private key, is NULL when it is held in a file outside the database.
CREATE TABLE audit_keys (
    id         INTEGER PRIMARY KEY,
    verifier   TEXT   NOT NULL UNIQUE,
    signer     TEXT,
    created_at BIGINT NOT NULL
);
