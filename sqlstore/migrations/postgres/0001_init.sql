-- Times are Unix milliseconds (UTC) in BIGINT columns, the same on every engine.
CREATE TABLE users (
    id            BIGSERIAL PRIMARY KEY,
    username      TEXT    NOT NULL UNIQUE,
    email         TEXT    NOT NULL DEFAULT '',
    display_name  TEXT    NOT NULL DEFAULT '',
    password_hash TEXT    NOT NULL,
    vendor        BOOLEAN NOT NULL DEFAULT FALSE,
    whitelabeled  BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    BIGINT  NOT NULL
);

CREATE TABLE licenses (
    id         BIGSERIAL PRIMARY KEY,
    key        TEXT    NOT NULL UNIQUE,
    kind       TEXT    NOT NULL CHECK (kind IN ('key', 'serial')),
    owner_id   BIGINT REFERENCES users (id),
    seats      INTEGER NOT NULL CHECK (seats >= 1),
    expires_at BIGINT,
    revoked_at BIGINT,
    created_at BIGINT  NOT NULL
);
CREATE INDEX licenses_owner ON licenses (owner_id) WHERE owner_id IS NOT NULL;

CREATE TABLE serials (
    license_id        BIGINT PRIMARY KEY REFERENCES licenses (id),
    model             TEXT     NOT NULL,
    manufacturer_name TEXT     NOT NULL,
    manufacturer_id   BIGINT   NOT NULL,
    manufacture_date  TEXT     NOT NULL,
    registered_by     BIGINT REFERENCES users (id),
    status            SMALLINT NOT NULL DEFAULT 0,
    created_at        BIGINT   NOT NULL
);

CREATE TABLE sessions (
    id           TEXT   NOT NULL PRIMARY KEY,
    license_id   BIGINT NOT NULL REFERENCES licenses (id),
    ts           BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    revoked_at   BIGINT
);
-- Counting a license's live sessions (its taken seats) reads only this index.
CREATE INDEX sessions_live ON sessions (license_id, last_seen_at) WHERE revoked_at IS NULL;

-- The last session timestamp issued: the persistent monotonic guard of wire contract §3.4.
CREATE TABLE clock (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    last_ms BIGINT  NOT NULL
);
INSERT INTO clock (id, last_ms) VALUES (1, 0);

CREATE TABLE signing_keys (
    id         TEXT   NOT NULL PRIMARY KEY,
    secret     TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);
