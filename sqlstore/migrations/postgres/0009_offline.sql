-- Offline certificates for air-gapped devices (offline.go). A certificate holds one seat of its
-- license from issue until its not-after or its deactivation, through a session with a hard expiry
-- (expires_at): such a session is exempt from the idle timeout and is ended at its expiry.
ALTER TABLE sessions ADD COLUMN expires_at BIGINT;
DROP INDEX sessions_idle;
-- The sessions the idle sweep may end: those of online activations only.
CREATE INDEX sessions_idle ON sessions (last_seen_at) WHERE revoked_at IS NULL AND ended_at IS NULL AND expires_at IS NULL;
-- The sessions the expiry sweep ends, earliest expiry first (few: one per offline certificate).
CREATE INDEX sessions_expiring ON sessions (expires_at)
    WHERE revoked_at IS NULL AND ended_at IS NULL AND expires_at IS NOT NULL;

-- A device's request names its license by the key's SHA-256, never the key itself. Filled for the
-- licenses that exist already by OpenConsole (sqlstore's backfill of this migration), in the same
-- transaction: the engines do not share a SHA-256 function.
ALTER TABLE licenses ADD COLUMN key_sha256 BYTEA;
CREATE UNIQUE INDEX licenses_key_sha256 ON licenses (key_sha256);

-- One row per device key: its current certificate. A re-issue for the same device key replaces
-- the row (a higher counter, the same seat); a deactivation sets deactivated_at for good.
CREATE TABLE offline_certificates (
    id             BIGSERIAL PRIMARY KEY,
    device_key     BYTEA   NOT NULL UNIQUE,
    license_id     BIGINT  NOT NULL REFERENCES licenses (id),
    counter        BIGINT  NOT NULL,
    nonce          BYTEA   NOT NULL,
    session_id     TEXT    NOT NULL REFERENCES sessions (id),
    issued_at      BIGINT  NOT NULL,
    not_before     BIGINT  NOT NULL,
    not_after      BIGINT  NOT NULL,
    deactivated_at BIGINT
);
CREATE INDEX offline_certificates_license ON offline_certificates (license_id, id);

-- The keys that sign offline certificates, in the order they were added (the newest signs), kept
-- like the audit keys: signer, the private key, is NULL when it is held in a file outside the
-- database.
CREATE TABLE offline_keys (
    id         BIGSERIAL PRIMARY KEY,
    verifier   TEXT   NOT NULL UNIQUE,
    signer     TEXT,
    created_at BIGINT NOT NULL
);
