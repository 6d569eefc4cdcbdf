-- Apps, their manifests and registry credentials; download-token answers; the product catalogue,
-- reviews and subscriptions (wire contract §2.6 to §2.11).
CREATE TABLE apps (
    name        TEXT    NOT NULL PRIMARY KEY,
    official    BOOLEAN NOT NULL DEFAULT FALSE,
    -- Registry credentials sealed with AES-256-GCM under a data key ("v1.<key id>.<base64>"); NULL
    -- when none are set. Never stored in the clear.
    credentials TEXT,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);

-- One row per variant: an app version may have a manifest for each manifest schema version.
CREATE TABLE manifests (
    app            TEXT   NOT NULL REFERENCES apps (name),
    version        TEXT   NOT NULL,
    schema_version TEXT   NOT NULL,
    document       TEXT   NOT NULL,
    created_at     BIGINT NOT NULL,
    PRIMARY KEY (app, version, schema_version)
);

-- Keys that encrypt secrets at rest, next to the JWT signing keys.
CREATE TABLE data_keys (
    id         TEXT   NOT NULL PRIMARY KEY,
    secret     TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE token_issuances (
    id          BIGSERIAL PRIMARY KEY,
    session_id  TEXT    NOT NULL REFERENCES sessions (id),
    app         TEXT    NOT NULL,
    version     TEXT    NOT NULL,
    credentials BOOLEAN NOT NULL,
    issued_at   BIGINT  NOT NULL
);
CREATE INDEX token_issuances_session ON token_issuances (session_id, id);

-- Products are kept as the JSON documents the API returns; the columns are what is filtered on
-- and what a review updates.
CREATE TABLE products (
    id           BIGINT  PRIMARY KEY,
    store_id     BIGINT  NOT NULL,
    app          TEXT,
    name         TEXT    NOT NULL,
    permalink    TEXT    NOT NULL,
    rating_count INTEGER NOT NULL,
    rating_sum   DOUBLE PRECISION NOT NULL,
    document     TEXT    NOT NULL,
    updated_at   BIGINT  NOT NULL
);
CREATE INDEX products_store ON products (store_id, id);
CREATE INDEX products_app ON products (app) WHERE app IS NOT NULL;

CREATE TABLE reviews (
    id             BIGSERIAL PRIMARY KEY,
    product_id     BIGINT  NOT NULL REFERENCES products (id),
    user_id        BIGINT  NOT NULL REFERENCES users (id),
    reviewer       TEXT    NOT NULL,
    reviewer_email TEXT    NOT NULL,
    review         TEXT    NOT NULL,
    rating         DOUBLE PRECISION NOT NULL,
    status         TEXT    NOT NULL,
    verified       BOOLEAN NOT NULL,
    created_at     BIGINT  NOT NULL
);
CREATE INDEX reviews_product ON reviews (product_id);

CREATE TABLE subscriptions (
    id         BIGSERIAL PRIMARY KEY,
    user_id    BIGINT  NOT NULL REFERENCES users (id),
    product_id BIGINT  NOT NULL REFERENCES products (id),
    status     TEXT    NOT NULL,
    created_at BIGINT  NOT NULL
);
CREATE INDEX subscriptions_user ON subscriptions (user_id, product_id);
