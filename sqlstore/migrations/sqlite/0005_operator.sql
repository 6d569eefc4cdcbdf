-- The operator API: license lifecycle (suspension, notes, metadata, a version for optimistic
-- concurrency), user roles and disabling, API tokens, idempotency keys, the record of every
-- administrative change, and activations per hour for the statistics.
ALTER TABLE licenses ADD COLUMN suspended_at BIGINT;
ALTER TABLE licenses ADD COLUMN note TEXT NOT NULL DEFAULT '';
-- A JSON object, as the operator gave it.
ALTER TABLE licenses ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}';
ALTER TABLE licenses ADD COLUMN updated_at BIGINT NOT NULL DEFAULT 0;
-- Incremented by every change an operator can make (not by seats taken or freed): the ETag.
ALTER TABLE licenses ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
UPDATE licenses SET updated_at = created_at;

ALTER TABLE users ADD COLUMN disabled BOOLEAN NOT NULL DEFAULT FALSE;
-- '' (a console user), or the role with which the user may sign in to the admin web console.
ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN updated_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
UPDATE users SET updated_at = created_at;

-- API tokens of the operator API. Only a hash of the secret is kept.
CREATE TABLE api_tokens (
    id           TEXT   NOT NULL PRIMARY KEY,
    name         TEXT   NOT NULL,
    role         TEXT   NOT NULL CHECK (role IN ('admin', 'operator', 'reader')),
    secret_hash  TEXT   NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    revoked_at   BIGINT,
    last_used_at BIGINT
);

-- Idempotency-Key of the operator API: what the first request with a key got, kept with the change
-- it made (scope: who sent it).
CREATE TABLE idempotency_keys (
    scope        TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    request_hash TEXT    NOT NULL,
    status       INTEGER NOT NULL,
    body         TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- Every administrative change, written in the same transaction as the change: seq counts from 0
-- without gaps, in commit order.
CREATE TABLE audit_entries (
    seq        BIGINT NOT NULL PRIMARY KEY,
    at         BIGINT NOT NULL,
    actor_kind TEXT   NOT NULL,
    actor_name TEXT   NOT NULL,
    addr       TEXT   NOT NULL,
    action     TEXT   NOT NULL,
    target     TEXT   NOT NULL,
    before     TEXT   NOT NULL,
    after      TEXT   NOT NULL
);
CREATE INDEX audit_entries_action ON audit_entries (action, seq);
CREATE INDEX audit_entries_target ON audit_entries (target, seq);

-- New sessions per hour (Unix time / 3600), kept by the activations themselves.
CREATE TABLE activation_hours (
    hour BIGINT NOT NULL PRIMARY KEY,
    n    BIGINT NOT NULL
);
