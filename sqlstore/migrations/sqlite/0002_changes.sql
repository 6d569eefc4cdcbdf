-- Every change that can make a live session stop being live (a session or license revoked, a
-- license's expiry changed) is logged here in the same transaction, so that every server can drop
-- what it caches within a poll interval.
CREATE TABLE changes (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    license_id BIGINT,
    session_id TEXT,
    at         BIGINT NOT NULL
);
CREATE INDEX changes_at ON changes (at);
