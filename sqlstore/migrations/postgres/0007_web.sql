-- The admin web console: signed-in sessions (a SHA-256 of the cookie's secret, never the secret).
CREATE TABLE web_sessions (
    id_hash      TEXT   NOT NULL PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES users (id),
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);
CREATE INDEX web_sessions_last_seen ON web_sessions (last_seen_at);

-- Licenses by status, for the overview's counts and the status filters (few licenses are revoked,
-- suspended or expiring, so these stay small). Their predicates name no column that activations
-- change, so they cost the activations nothing.
CREATE INDEX licenses_revoked ON licenses (id) WHERE revoked_at IS NOT NULL;
CREATE INDEX licenses_suspended ON licenses (id) WHERE revoked_at IS NULL AND suspended_at IS NOT NULL;
CREATE INDEX licenses_expiring ON licenses (expires_at)
    WHERE revoked_at IS NULL AND suspended_at IS NULL AND expires_at IS NOT NULL;

-- What the license search looks in: the key, the note and the owner's username, in lower case, one
-- narrow row per license (a scan of it is a fraction of a scan of the licenses). Written with the
-- license; the rows of licenses that exist already are filled here (SQLite's lower() folds ASCII
-- letters only, so their other letters keep their case until the license next changes).
CREATE TABLE license_search (
    license_id BIGINT NOT NULL PRIMARY KEY REFERENCES licenses (id),
    text       TEXT   NOT NULL
);
INSERT INTO license_search (license_id, text)
    SELECT l.id, lower(l.key) || ' ' || lower(l.note) || ' ' || COALESCE(lower(u.username), '')
    FROM licenses l LEFT JOIN users u ON u.id = l.owner_id;
